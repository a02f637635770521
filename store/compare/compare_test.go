package compare_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/store/compare"
)

var (
	_ itinerary.VisitSource = (*compare.Postgres)(nil)
	_ itinerary.VisitSource = (*compare.Redis)(nil)
)

// serverURL is env's URL, or def; the test skips when nothing answers
// there.
func serverURL(t *testing.T, env, def string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		u = def
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, time.Second)
	if err != nil {
		t.Skipf("nothing answers at %s (%v): skipping", pu.Host, err)
	}
	c.Close()
	return u
}

func postgresURL(t *testing.T) string {
	return serverURL(t, "ROAMTRAIL_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

func redisURL(t *testing.T) string {
	return serverURL(t, "REDIS_URL", "redis://127.0.0.1:6379/0")
}

// population is three subscribers: one with visits on several days (two
// regions with the same sightings on two days), one with none, one with
// a single visit.
func population() []compare.Subscriber {
	sub := func(b byte) itinerary.Pseudonym {
		var p itinerary.Pseudonym
		for i := range p {
			p[i] = b ^ byte(i)
		}
		return p
	}
	return []compare.Subscriber{
		{Sub: sub(1), Visits: []itinerary.Visit{
			{Day: 20400, Region: 110000, First: 3600, Last: 80000},
			{Day: 20400, Region: 130100, First: 100, Last: 200},
			{Day: 20401, Region: 110000, First: 3600, Last: 80000},
			{Day: 20410, Region: 440, First: 0, Last: 86399},
		}},
		{Sub: sub(2)},
		{Sub: sub(3), Visits: []itinerary.Visit{{Day: 20405, Region: 810000, First: 7, Last: 7}}},
	}
}

type store interface {
	itinerary.VisitSource
	Load(ctx context.Context, subs []compare.Subscriber) (compare.Load, error)
	Close(ctx context.Context) error
}

func checkStore(t *testing.T, s store) {
	ctx := context.Background()
	pop := population()
	ld, err := s.Load(ctx, pop)
	if err != nil {
		t.Fatal(err)
	}
	if ld.Visits != 5 || ld.Bytes <= 0 {
		t.Fatalf("load: %+v", ld)
	}
	for _, tc := range []struct {
		name string
		sub  int
		w    itinerary.Window
		want []itinerary.Visit
	}{
		{"all", 0, itinerary.Window{First: 20390, Last: 20420}, pop[0].Visits},
		{"bounds inclusive", 0, itinerary.Window{First: 20401, Last: 20410}, pop[0].Visits[2:]},
		{"one day", 0, itinerary.Window{First: 20400, Last: 20400}, pop[0].Visits[:2]},
		{"outside", 0, itinerary.Window{First: 20411, Last: 20440}, nil},
		{"no visits", 1, itinerary.Window{First: 20390, Last: 20420}, nil},
		{"single", 2, itinerary.Window{First: 20405, Last: 20405}, pop[2].Visits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Visits(ctx, pop[tc.sub].Sub, tc.w, nil)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b itinerary.Visit) int {
				if a.Day != b.Day {
					return int(a.Day - b.Day)
				}
				return int(a.Region) - int(b.Region)
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPostgres(t *testing.T) {
	u := postgresURL(t)
	ctx := context.Background()
	table := fmt.Sprintf("roamtrail_compare_test_%d", os.Getpid())
	p, err := compare.OpenPostgres(ctx, compare.PostgresOptions{URL: u, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, p)
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = $1", table).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table left after Close: %d %v", n, err)
	}
}

func TestRedis(t *testing.T) {
	u := redisURL(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("rtcmp-test-%d:", os.Getpid())
	r, err := compare.NewRedis(ctx, compare.RedisOptions{URL: u, Prefix: prefix, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkStore(t, r)
	opts, _ := redis.ParseURL(u)
	c := redis.NewClient(opts)
	defer c.Close()
	keys, _, err := c.Scan(ctx, 0, prefix+"*", 1000).Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys left after Close: %d %v", len(keys), err)
	}
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		open func() error
	}{
		{"postgres no url", func() error { _, err := compare.OpenPostgres(ctx, compare.PostgresOptions{}); return err }},
		{"postgres bad table", func() error {
			_, err := compare.OpenPostgres(ctx, compare.PostgresOptions{URL: "postgres://x", Table: "a; DROP TABLE b"})
			return err
		}},
		{"redis no url", func() error { _, err := compare.NewRedis(ctx, compare.RedisOptions{}); return err }},
		{"redis bad prefix", func() error {
			_, err := compare.NewRedis(ctx, compare.RedisOptions{URL: "redis://x", Prefix: "a*"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.open(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
