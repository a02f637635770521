package smpp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the session's Prometheus collectors. They always exist;
// they are registered only when Options.Registerer is set.
type metrics struct {
	submits    *prometheus.CounterVec // by result: ok, status_0xNN, unknown, retry_0xNN
	inbound    *prometheus.CounterVec // by kind: mo, receipt, part, busy, malformed, data_sm
	reconnects *prometheus.CounterVec // by link
	bound      *prometheus.GaugeVec   // by link: 1 bound, 0 not
	window     prometheus.Gauge
	stray      prometheus.Counter
	evicted    prometheus.CounterFunc
}

func newMetrics(name string, reg prometheus.Registerer, evicted func() float64) (*metrics, error) {
	labels := prometheus.Labels{"session": name}
	m := &metrics{
		submits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "submits_total", ConstLabels: labels,
			Help: "submit_sm attempts by result (ok, status_0xNN or nack_0xNN refused, unknown outcome, retry_0xNN, part_resent: a part of a long message sent again after the link died under it).",
		}, []string{"result"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "inbound_total", ConstLabels: labels,
			Help: "Inbound deliver_sm/data_sm by kind (mo, receipt, part, busy, malformed).",
		}, []string{"kind"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "reconnects_total", ConstLabels: labels,
			Help: "Connections lost after a successful bind.",
		}, []string{"link"}),
		bound: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "bound", ConstLabels: labels,
			Help: "1 while the link is bound.",
		}, []string{"link"}),
		window: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "window_in_use", ConstLabels: labels,
			Help: "submit_sm awaiting a response.",
		}),
		stray: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "stray_responses_total", ConstLabels: labels,
			Help: "Responses matching no outstanding request (late after a timeout).",
		}),
		evicted: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "roamtrail", Subsystem: "smpp", Name: "reassembly_dropped_total", ConstLabels: labels,
			Help: "Incomplete concatenated MO sets dropped by TTL or memory bound.",
		}, evicted),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.submits, m.inbound, m.reconnects, m.bound, m.window, m.stray, m.evicted} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("smpp: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
