// Package proc is how Immunity runs the commands of a release's work on the server's own
// machine (builds, integration tests): each in a process group of its own that a cancel
// kills whole, and that dies with the server, so no command outlives the work it was for.
// App processes started by the local deployer are not run this way: they outlive the
// server by design and are adopted by the next one.
package proc
