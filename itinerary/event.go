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
