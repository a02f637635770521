package smsgw

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/smsgw/state"
)

func sampleJobs() []*job {
	at := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	return []*job{
		{Sub: itinerary.Pseudonym{1, 2, 3}, Sealed: []byte("sealed bytes"), Masked: "138****8000", Cmd: Command{Kind: KindRequest, Days: 30, Lang: itinerary.English}, Received: at},
		{Sub: itinerary.Pseudonym{9}, Sealed: []byte{0, 255}, Masked: "", Cmd: Command{Kind: KindConfirm}, Received: at,
			Claimed: true, Counted: true, Allowed: true, Notify: true, Logged: true, Attempts: 7,
			Resolved: &state.Request{Nonce: "0187a1b2c3d4e5f60718293a4b5c6d7e", Days: 15, Lang: itinerary.Chinese},
			Intent:   &state.Request{Nonce: "0187a1b2c3d4e5f60718293a4b5c6d7e", Days: 15, Lang: itinerary.Chinese}},
		{Sub: itinerary.Pseudonym{7}, Sealed: []byte("x"), Masked: "139****0000", Cmd: Command{Kind: KindConfirm, Lang: itinerary.English}, Received: at,
			Intent: &state.Request{Nonce: "n", Days: 30, Lang: itinerary.English}, Done: true},
	}
}

// A job reads back as it was written, and the JSON earlier versions
// wrote still reads.
func TestJobEncoding(t *testing.T) {
	for _, j := range sampleJobs() {
		b, err := j.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeJob([]byte("id"), b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		j.ID = "id"
		if !got.Received.Equal(j.Received) {
			t.Errorf("received %v, want %v", got.Received, j.Received)
		}
		got.Received = j.Received
		if !reflect.DeepEqual(got, j) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, j)
		}
		old, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeJob([]byte("id"), old); err != nil || got.Sub != j.Sub || got.Attempts != j.Attempts || got.Cmd != j.Cmd {
			t.Errorf("an earlier version's JSON: %+v, %v", got, err)
		}
		for n := range len(b) { // every torn value is an error
			if _, err := decodeJob([]byte("id"), b[:n]); !errors.Is(err, errBadJob) {
				t.Fatalf("torn at %d of %d: %v", n, len(b), err)
			}
		}
	}
}

func FuzzDecodeJob(f *testing.F) {
	for _, j := range sampleJobs() {
		b, _ := j.encode()
		f.Add(b)
		old, _ := json.Marshal(j)
		f.Add(old)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeJob([]byte("id"), b)
		if err != nil {
			if !errors.Is(err, errBadJob) {
				t.Fatalf("error %v is not errBadJob", err)
			}
			return
		}
		if b[0] == jobVersion { // what reads, writes back the same
			again, err := j.encode()
			if err != nil {
				t.Fatal(err)
			}
			j2, err := decodeJob([]byte("id"), again)
			if err != nil || !reflect.DeepEqual(j2.Resolved, j.Resolved) || !reflect.DeepEqual(j2.Intent, j.Intent) || j2.Sub != j.Sub || j2.Cmd != j.Cmd {
				t.Fatalf("re-encoded job differs: %+v vs %+v (%v)", j2, j, err)
			}
		}
	})
}
