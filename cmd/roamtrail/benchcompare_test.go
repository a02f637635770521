package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// postgresURL is the PostgreSQL of these tests; they skip when it does not
// answer.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("ROAMTRAIL_POSTGRES_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("ROAMTRAIL_POSTGRES_URL: %v", err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, time.Second)
	if err != nil {
		t.Skipf("no PostgreSQL at ROAMTRAIL_POSTGRES_URL (%v): skipping", err)
	}
	c.Close()
	return u
}

// TestBenchCompare runs bench compare end to end at a tiny size against
// the real PostgreSQL and Redis: the backends agree (the command fails
// otherwise), the JSON holds every figure, the table prints, the go-smpp
// echo ran in its own process, and nothing is left in either server.
func TestBenchCompare(t *testing.T) {
	pgURL, rURL := postgresURL(t), redisURL(t)
	t.Setenv(testMainEnv, "1") // the go-smpp echo is a process of this binary
	table := fmt.Sprintf("roamtrail_compare_t%d", os.Getpid())
	prefix := fmt.Sprintf("rtcmp-t%d:", os.Getpid())
	out := filepath.Join(t.TempDir(), "compare.json")
	stdout, stderr, err := runCmd(t, "", "bench", "compare", "--subscribers", "300", "--queries", "200", "--throughput-for", "300ms",
		"--postgres-url", pgURL, "--postgres-table", table, "--redis-url", rURL, "--redis-prefix", prefix,
		"--sms-duration", "1s", "--sms-subscribers", "100", "--sms-concurrency", "10", "--json", out)
	if err != nil {
		t.Fatalf("bench compare: %v\n%s\n%s", err, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res compareResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, b)
	}
	if res.Visits == 0 || res.Events == 0 || res.Agreed != 400 || len(res.Backends) != 3 {
		t.Fatalf("result: %+v", res)
	}
	for i, want := range []string{"roamtrail", "postgresql", "redis"} {
		s := res.Backends[i]
		if s.Name != want || s.Bytes <= 0 || s.LoadSeconds <= 0 || s.Lookup15.P50 <= 0 || s.Lookup30.P99 <= 0 ||
			s.Lookup15.PerSec <= 0 || s.Lookup30.PerSec <= 0 || s.Ratio["lookup30_p50"] <= 0 {
			t.Errorf("backend %d: %+v", i, s)
		}
	}
	if res.SMS == nil || res.SMS.Gateway.Queries == 0 || res.SMS.Echo.Queries == 0 || res.SMS.GoSMPP == nil || res.SMS.GoSMPP.Handled == 0 {
		t.Fatalf("sms: %+v", res.SMS)
	}
	if runtime.GOOS == "linux" && (res.SMS.Gateway.CPUCores <= 0 || res.SMS.Echo.CPUCores <= 0 || res.SMS.GoSMPP.CPUCores <= 0) {
		t.Errorf("sms: CPU not measured: gateway %v, echo %v, go-smpp %v cores", res.SMS.Gateway.CPUCores, res.SMS.Echo.CPUCores, res.SMS.GoSMPP.CPUCores)
	}
	for _, want := range []string{"gave the same itinerary on every backend", "30-day lookups/s", "postgresql", "go-smpp", "gateway/go-smpp"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}

	ctx := context.Background()
	pc, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var n int
	if err := pc.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table).Scan(&n); err != nil || n != 0 {
		t.Errorf("table left behind: %d %v", n, err)
	}
	opts, _ := redis.ParseURL(rURL)
	rc := redis.NewClient(opts)
	defer rc.Close()
	if keys, _, err := rc.Scan(ctx, 0, prefix+"*", 1000).Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys left behind: %d %v", len(keys), err)
	}
}

// TestBenchCompareFlags refuses bad sizes before touching any server.
func TestBenchCompareFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--days", "31"}, "--days"},
		{[]string{"--queries", "10"}, "--queries"},
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--sms-concurrency", "20000"}, "--sms-concurrency"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, _, err := runCmd(t, "", append([]string{"bench", "compare"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
