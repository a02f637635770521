package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
)

// `roamtrail ingest` of a hand-made file, then lookups through the Go API
// (the store and itinerary.Engine), give the itinerary the rules define:
// the dwell rule, cities passed through, abroad, the window's edges at local
// midnight, rows out of order and repeated, retention, erasure.
func TestIngestThenLookupHandMade(t *testing.T) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(loc)
	today, _ := itinerary.DayOf(now, loc)
	// at is a local time d days from today; never later than now, which
	// ingest would drop as from the future.
	at := func(d int, hh, mm, ss int) string {
		y, m, day := now.AddDate(0, 0, d).Date()
		return time.Date(y, m, day, hh, mm, ss, 0, loc).Format(time.RFC3339)
	}
	const alice, bob = "13800138000", "8613900139000"
	rows := []string{
		// Beijing yesterday for exactly 4 hours, the rows out of order and
		// one repeated: counts.
		alice + "," + at(-1, 12, 0, 0) + ",110100",
		alice + "," + at(-1, 8, 0, 0) + ",110100",
		alice + "," + at(-1, 12, 0, 0) + ",110100",
		// A train through Shijiazhuang (40 minutes) and Baoding (one
		// sighting) the same afternoon: neither counts.
		"+86" + alice + "," + at(-1, 14, 0, 0) + ",130100",
		"86" + alice + "," + at(-1, 14, 40, 0) + ",130100",
		alice + "," + at(-1, 14, 50, 0) + ",130600",
		// Tianjin two days ago for 3 h 59 min: does not count.
		alice + "," + at(-2, 9, 0, 0) + ",120100",
		alice + "," + at(-2, 12, 59, 0) + ",120100",
		// Japan three days ago, seen once (twice, the same row): abroad
		// counts on any sighting.
		alice + "," + at(-3, 9, 0, 0) + ",440",
		alice + "," + at(-3, 9, 0, 0) + ",440",
		// Shanghai 14 days ago from local midnight: the first day of the
		// 15-day window.
		alice + "," + at(-14, 0, 0, 0) + ",310100",
		alice + "," + at(-14, 5, 0, 0) + ",310100",
		// Guangzhou 15 days ago until a second before midnight: in the
		// 30-day window, not the 15-day one.
		alice + "," + at(-15, 18, 0, 0) + ",440100",
		alice + "," + at(-15, 23, 59, 59) + ",440100",
		// Chengdu 31 days ago: past retention, dropped at ingest.
		alice + "," + at(-31, 6, 0, 0) + ",510100",
		alice + "," + at(-31, 12, 0, 0) + ",510100",
		// Bob: Hangzhou yesterday; he is then erased.
		bob + "," + at(-1, 8, 0, 0) + ",330100",
		bob + "," + at(-1, 13, 0, 0) + ",330100",
	}
	csv := "msisdn,time,region\n" + strings.Join(rows, "\n") + "\n"
	data := t.TempDir() + "/data"
	out, stderr, err := runCmd(t, csv, "ingest", "--data-dir", data, "-")
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, " 0 rejected") || !strings.Contains(out, "2 too old") {
		t.Errorf("ingest summary %q: want nothing rejected, the two Chengdu rows too old", out)
	}

	db, ps := openStopped(t, data)
	defer db.Close()
	sub := func(number string) itinerary.Pseudonym {
		n, err := msisdn.Parse(number)
		if err != nil {
			t.Fatal(err)
		}
		return ps.Pseudonym(n)
	}
	e := &itinerary.Engine{Source: db, Rules: itinerary.Rules{MinDwell: itinerary.DefaultMinDwell}, Location: loc, Now: time.Now}
	ctx := context.Background()
	place := func(region itinerary.Region, d int) itinerary.Place {
		return itinerary.Place{Region: region, FirstDay: today + itinerary.Day(d), LastDay: today + itinerary.Day(d)}
	}
	for _, tc := range []struct {
		days int
		want []itinerary.Place
	}{
		{15, []itinerary.Place{place(110100, -1), place(440, -3), place(310100, -14)}},
		{30, []itinerary.Place{place(110100, -1), place(440, -3), place(310100, -14), place(440100, -15)}},
	} {
		it, err := e.Lookup(ctx, sub(alice), tc.days)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(it.Places, tc.want) {
			t.Errorf("%d days: %v, want %v", tc.days, it.Places, tc.want)
		}
	}
	// The 30 days split as China Mobile's reply did: days 1-15, then 16-30.
	newer, older, err := e.LookupSplit(ctx, sub(alice), 30, 15)
	if err != nil {
		t.Fatal(err)
	}
	if len(newer.Places) != 3 || fmt.Sprint(older.Places) != fmt.Sprint([]itinerary.Place{place(440100, -15)}) {
		t.Errorf("split: newer %v, older %v", newer.Places, older.Places)
	}

	if it, err := e.Lookup(ctx, sub(bob), 15); err != nil || fmt.Sprint(it.Places) != fmt.Sprint([]itinerary.Place{place(330100, -1)}) {
		t.Fatalf("bob before erasure: %v, %v", it.Places, err)
	}
	if err := db.Erase(ctx, sub(bob)); err != nil {
		t.Fatal(err)
	}
	if it, err := e.Lookup(ctx, sub(bob), 30); err != nil || len(it.Places) != 0 {
		t.Errorf("bob after erasure: %v, %v; want nothing at once", it.Places, err)
	}
}
