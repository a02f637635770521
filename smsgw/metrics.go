package smsgw

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dialogue's; the SMPP session keeps its own (bind state,
// reconnects, submit statuses, window).
type metrics struct {
	mo          *prometheus.CounterVec   // by command
	replies     *prometheus.CounterVec   // by outcome
	limited     *prometheus.CounterVec   // rate-limit hits, by kind
	duplicates  prometheus.Counter       // redeliveries suppressed
	refused     *prometheus.CounterVec   // deliver_sm answered with a temporary error, by reason
	receipts    *prometheus.CounterVec   // delivery receipts, by state
	backlog     prometheus.Gauge         // jobs queued or in progress
	lookup      prometheus.Histogram     // itinerary lookup latency
	endToEnd    *prometheus.HistogramVec // MO received to reply accepted, by command
	audit       prometheus.Histogram     // access-log append latency (an fsync, or only the write)
	auditSync   prometheus.Histogram     // the finisher's wait for the fsync of entries written without one
	auditFailed prometheus.Counter       // access-log writes that failed: nothing was sent
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms .. 16 s
	m := &metrics{
		mo:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roamtrail_mo_total", Help: "MO messages taken, by command."}, []string{"command"}),
		replies:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roamtrail_replies_total", Help: "Replies, by outcome."}, []string{"outcome"}),
		limited:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roamtrail_rate_limited_total", Help: "Rate-limit hits, by kind."}, []string{"kind"}),
		duplicates:  prometheus.NewCounter(prometheus.CounterOpts{Name: "roamtrail_mo_duplicates_total", Help: "MO redeliveries suppressed."}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roamtrail_mo_refused_total", Help: "deliver_sm answered with a temporary error, by reason."}, []string{"reason"}),
		receipts:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roamtrail_receipts_total", Help: "Delivery receipts, by state."}, []string{"state"}),
		backlog:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "roamtrail_jobs_backlog", Help: "MO jobs queued or in progress."}),
		lookup:      prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roamtrail_lookup_seconds", Help: "Itinerary lookup latency.", Buckets: prometheus.ExponentialBuckets(1e-6, 2, 20)}),
		endToEnd:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "roamtrail_mo_to_reply_seconds", Help: "From MO received to reply accepted by the SMSC.", Buckets: buckets}, []string{"command"}),
		audit:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roamtrail_access_log_append_seconds", Help: "Access-log append latency.", Buckets: prometheus.ExponentialBuckets(1e-5, 2, 20)}),
		auditSync:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roamtrail_access_log_sync_wait_seconds", Help: "Wait for the fsync of access-log entries written, unsynced, before their replies; one observation per batch of finished jobs sharing that fsync.", Buckets: prometheus.ExponentialBuckets(1e-5, 2, 20)}),
		auditFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "roamtrail_access_log_failures_total", Help: "Access-log writes or fsyncs that failed; an entry whose write failed was not sent, one whose fsync failed is written again at the next start."}),
	}
	if reg != nil {
		reg.MustRegister(m.mo, m.replies, m.limited, m.duplicates, m.refused, m.receipts, m.backlog, m.lookup, m.endToEnd, m.audit, m.auditSync, m.auditFailed)
	}
	return m
}
