// Package deployertest holds the contract tests every deployers.Deployer must pass, so the
// local and ssh deployers are held to the same behaviour by the same code.
//
// # The model under test
//
// A host is a folder (Host.Base) holding releases/<sha>/ (one unpacked artifact each), a
// `current` symlink pointing at the live release and a `previous` symlink pointing at the
// one before it. Run checks, each in a parallel subtest on fresh hosts:
//
//   - Upload then Activate: `current` points at the release and the app answers with it,
//     running in the release folder itself (resolved, not through `current`);
//   - a second Upload of the same release unpacks nothing again;
//   - Activate of a second release sets `previous` to the first; Activate of `previous`
//     (rollback) brings the old release back;
//   - pruning keeps Keep releases and never the live or previous one (rule below), however
//     their links are written (an absolute path too);
//   - a prune whose removal of a release stops part-way (its marker cannot be deleted)
//     leaves no half release that is listed, can be switched to, or holds a marker without
//     the release's files; the next Upload deletes what it left;
//   - crash leftovers (releases/<sha>.tmp-x, a releases/<sha> without its completion
//     marker) are not listed, cannot be activated (ErrNotFound), leave `current` alone,
//     and a retried Upload and Activate succeeds;
//   - Activate of a missing release returns ErrNotFound and changes nothing (not even a
//     restart of the app);
//   - Activate of a release whose app exits at start fails with an error holding the app's
//     last log lines ("refusing to start"), and rolling back afterwards works;
//   - Upload and Activate on several hosts at once.
//
// Pruning rule: after a switch a host keeps `current`, `previous`, and then the most
// recently uploaded or activated other releases until Keep releases remain (with Keep below
// 2 both protected ones are still kept). HostState.Releases lists the complete releases
// newest first, "newest" meaning the time of upload or of the last activation.
//
// # Using it
//
// A deployer package calls Run from one test with a Harness, and Main from TestMain (it
// removes the test app build when the test binary ends):
//
//	func TestMain(m *testing.M) { deployertest.Main(m) }
//
//	func TestContract(t *testing.T) {
//		d := local.New(local.Options{Run: deployertest.Argv, Health: deployertest.Health, Keep: 3})
//		deployertest.Run(t, deployertest.Harness{
//			Deployer: d,
//			Keep:     3,
//			NewHost:  func(t *testing.T) deployers.Host { ... a fresh folder and a free port ... },
//		})
//	}
//
// The deployer is configured with Health (the app's health path), the Harness's Keep, and
// a way to start the new release's app: the local deployer runs Argv itself; a deployer
// that runs a restart command in BASE/current (ssh) runs bin/restart, shipped in every
// release, which stops the host's test app, starts the new one in its own session in the
// resolved release folder with the port from $PORT or BASE/port (WritePortFile), and fails
// printing the app's last log lines if it exits at once.
//
// NewHost returns a new host on each call: a fresh Base folder, a free Port, URL
// "http://127.0.0.1:<Port>", and a t.Cleanup that stops the host's app (the deployer's own
// stop, or StopRestarted). An ssh host is Address "user@127.0.0.1:<sshd port>" with Base a
// folder of this machine, so the tests read what a host holds straight from the file
// system; Harness.Path maps a path on the host to one the test can open (default
// filepath.Join(Base, rel)).
//
// # The test app
//
// Releases come from the stdlib HTTP server in testdata/app (its own go.mod), compiled once
// per test binary by NewRelease. Each version is packed with deployers.Pack as a VERSION
// file, bin/restart, and bin/testapp, a /bin/sh launcher that execs the compiled binary (in
// a world-readable temp folder, so ssh hosts on 127.0.0.1 run it too): every version has its
// own files and checksum while artifacts stay tiny and quick to unpack. The app answers
// GET /healthz with 200 and GET / with JSON (Answer) naming IMMUNITY_RELEASE, its VERSION,
// its pid and working folder. A version starting with "fail-exit" exits at start;
// "fail-unhealthy" answers /healthz with 503.
package deployertest
