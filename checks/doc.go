// Package checks reports runs to GitHub: one Check Run per region stage of a run (named
// "immunity / REGION", with a Markdown summary and Promote / Roll back buttons) and one
// GitHub Deployment per region per release, with statuses.
//
// The model: Reporter is a pipeline.Listener. Notify only records the latest snapshot of
// each run (and rollbacks) in a queue and returns; one goroutine works the queue. For each
// stage it computes what GitHub should show, compares it with what was last sent (a digest
// stored beside the check run id, the last deployment status stored beside the deployment
// id) and sends only the difference. So a restart updates rather than duplicates, a burst
// of events costs one call, and a GitHub outage delays reports (retried with backoff)
// without ever blocking or failing the pipeline.
package checks
