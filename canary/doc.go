// Package canary holds the canary's parts: the traffic mirror (canary/mirror), the metric
// sources (canary/measure is their contract; canary/scrape, canary/prom and
// canary/mirrorsrc the backends) and the monitoring window (Monitor, which implements
// pipeline.Monitor).
//
// A window works like this: the baseline region's traffic mirrors are told to copy their
// safe requests to the canary hosts; every Interval the source measures both sides over
// the interval just ended (samples, or counts of events out of trials for a rate and for
// a gauge given as a share of counts); the interval's data go to the judge's Sequence,
// which keeps the intervals apart and looks with a sequential test planned for
// Period/Interval looks. A Fail ends the window early. The
// mirrors are turned off when the window ends, whatever happened. A canary in the
// baseline's own region (production, host by host) takes real traffic, so nothing is
// mirrored for it; only its metrics are compared with its neighbours'.
package canary
