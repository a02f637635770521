package itinerary

import "time"

// Event is one sighting of a subscriber's phone as the network reports it:
// the phone was seen in Region at Time. MSISDN is the number as received;
// ingest normalises and pseudonymises it before anything is stored.
type Event struct {
	MSISDN string
	Time   time.Time
	Region Region
}

// Pseudonym stands for a subscriber wherever location data is stored or
// looked up: a keyed hash of the normalised number (see package privacy), so
// that neither the store nor the gateway's shared state holds a number.
type Pseudonym [16]byte
