package main

import (
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Setenv("GOMAXPROCS", "")

	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	// Every stack a test starts calls it: it must not add one each time.
	for range 3 {
		if err := setProcs(0); err != nil {
			t.Fatal(err)
		}
		if got := runtime.GOMAXPROCS(0); got != def+1 {
			t.Fatalf("GOMAXPROCS = %d after setProcs(0), want Go's default %d plus one", got, def)
		}
	}
	if err := setProcs(5); err != nil || runtime.GOMAXPROCS(0) != 5 {
		t.Fatalf("setProcs(5): %v, GOMAXPROCS %d", err, runtime.GOMAXPROCS(0))
	}
	// The operator's GOMAXPROCS wins over the default.
	t.Setenv("GOMAXPROCS", "5")
	if err := setProcs(0); err != nil || runtime.GOMAXPROCS(0) != 5 {
		t.Fatalf("setProcs(0) with GOMAXPROCS=5: %v, GOMAXPROCS %d", err, runtime.GOMAXPROCS(0))
	}
	if err := setProcs(-1); err == nil {
		t.Fatal("setProcs(-1): no error")
	}
}
