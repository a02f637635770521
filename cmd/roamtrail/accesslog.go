package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/roamtrail/roamtrail/privacy/audit"
	"github.com/roamtrail/roamtrail/store"
	"github.com/roamtrail/roamtrail/store/feed"
)

// accessLog is the access log as the gateway uses it (smsgw.AccessLog):
// appends go to serve's *audit.Log, and JL reads back from its dir.
type accessLog struct {
	*audit.Log
	dir string
}

func (l accessLog) Last(ctx context.Context, subject string, n int) ([]audit.Entry, error) {
	return audit.Last(ctx, l.dir, subject, n)
}

// systemEntry is an entry of the service's own: no subject, no number.
func systemEntry(action, outcome, detail string) audit.Entry {
	return audit.Entry{Actor: audit.ActorSystem, Role: audit.RoleSystem, Action: action, Outcome: outcome, Detail: detail}
}

// ingestEntry records what an ingest run stored: counts only. An ingest
// that stopped early is "failed"; what it acknowledged before is stored.
func ingestEntry(sum feed.Summary, err error) audit.Entry {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	s := sum.Stats
	return systemEntry(audit.ActIngest, outcome, fmt.Sprintf("rows=%s accepted=%s rejected=%s too_old=%s future=%s no_consent=%s written=%s",
		grouped(sum.Rows), grouped(int64(s.Accepted)), grouped(sum.Rejected), grouped(int64(s.TooOld)),
		grouped(int64(s.Future)), grouped(int64(s.NoConsent)), grouped(int64(s.Written))))
}

// purgeEntry records a purge. The cutoff date is left out: the access log
// refuses seven digits in a row (a date among them), and the entry's time
// and the retention say it.
func purgeEntry(st store.PurgeStats, retention int) audit.Entry {
	return systemEntry(audit.ActPurge, "ok", fmt.Sprintf("retention=%dd visits=%s disk_before=%s disk_after=%s",
		retention, grouped(int64(st.MemVisits)), grouped(st.DiskBefore), grouped(st.DiskAfter)))
}

// grouped writes n with commas every three digits ("1,200,000"): the
// access log takes a run of seven digits for a phone number.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
