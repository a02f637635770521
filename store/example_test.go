package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/store"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "roamtrail-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A fixed clock, so that "the last 15 days" are known days.
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		log.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, shanghai)
	db, err := store.Open(ctx, dir, store.Options{Location: shanghai, Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Sightings arrive pseudonymised (see package privacy), in any order.
	alice := itinerary.Pseudonym{0xa1, 0x1c, 0xe0}
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, shanghai) }
	batch := []store.Sighting{
		{Sub: alice, Time: at(27, 13), Region: 110100}, // Beijing
		{Sub: alice, Time: at(27, 8), Region: 110100},
		{Sub: alice, Time: at(20, 9), Region: 130100}, // Shijiazhuang
		{Sub: alice, Time: at(20, 14), Region: 130100},
		{Sub: alice, Time: at(25, 10), Region: 310100}, // Shanghai, too briefly
		{Sub: alice, Time: at(14, 22), Region: 440},    // Japan, once
	}
	st, err := db.Apply(ctx, batch, &store.Checkpoint{Source: "feed-2026-11-27", Offset: 4096})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accepted %d sightings, wrote %d subscriber-days\n", st.Accepted, st.Written)

	w := itinerary.LastDays(now, db.Location(), 15)
	visits, err := db.Visits(ctx, alice, w, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range visits {
		fmt.Printf("%v %v %v\n", v.Day, v.Region, v.Dwell())
	}

	it := itinerary.Build(visits, w, itinerary.Rules{MinDwell: itinerary.DefaultMinDwell})
	catalog, err := itinerary.NewCatalog()
	if err != nil {
		log.Fatal(err)
	}
	words := itinerary.Wording{Catalog: catalog}
	fmt.Println(words.Itinerary(it, itinerary.Chinese))
	fmt.Println(words.Itinerary(it, itinerary.English))
	// Output:
	// accepted 6 sightings, wrote 4 subscriber-days
	// 2026-11-14 440 0s
	// 2026-11-20 130100 5h0m0s
	// 2026-11-25 310100 0s
	// 2026-11-27 110100 5h0m0s
	// 根据您的授权查询，您于近15天内到达或途经：北京市、河北省石家庄市、日本。
	// In the last 15 days your phone was in: Beijing; Shijiazhuang, Hebei; Japan.
}
