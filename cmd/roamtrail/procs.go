package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"
)

// procsFlag sets GOMAXPROCS for the commands that run the gateway.
//
// Why one more than Go's default: the gateway's hot path fsyncs (the job
// journal before every deliver_sm_resp, the access log before a job is
// let go). A goroutine blocked in fsync keeps its P until the runtime's
// monitor takes it back, and under steady load the monitor sleeps up to
// milliseconds between looks, longer than the fsync: on this project's
// 2 cores, one of the two Ps then sat idle behind the disk for much of the
// time. bench sms measured the gateway keeping 1.41-1.63 cores busy at
// Go's default (2 Ps) and 1.73-1.81 with one or two more, and answering
// 19% more queries a second with one more (2026-11-28, three runs at 2, 3
// and 4 Ps each): see the README's bench section. With every P busy, the
// one more costs a little time-slicing.
func procsFlag() cli.Flag {
	return &cli.IntFlag{Name: "procs", Usage: "threads running Go code at once (GOMAXPROCS); 0: Go's default plus one, unless the GOMAXPROCS environment variable is set", EnvVars: []string{"ROAMTRAIL_PROCS"}}
}

// setProcs applies --procs; n is its value. It is idempotent: the tests run
// several stacks in one process.
func setProcs(n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("--procs: want 0 or more")
	case n > 0:
		runtime.GOMAXPROCS(n)
	case os.Getenv("GOMAXPROCS") != "":
		// The operator's choice, which Go applied at start.
	default:
		runtime.SetDefaultGOMAXPROCS()
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
	return nil
}
