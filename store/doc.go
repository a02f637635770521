// Package store is the visit store: what roamtrail knows of where phones
// were, kept on Pebble under pseudonyms, answered from memory.
//
// # What is stored
//
// Raw events are never kept. For each subscriber, local day and region the
// store keeps one visit: the first and last sighting of the day, as seconds
// since local midnight (itinerary.Visit). That is all the dwell rule needs,
// it makes ingest idempotent (replaying events cannot move a first sighting
// later or a last one earlier), and it bounds a subscriber-day to a few
// regions however many events the network reports.
//
// # Key layout: day first
//
//	v | day (uint16 BE, days since 1970 in the store's time zone) | pseudonym (16 bytes)
//	  -> the day's visits, 7 bytes each: region (20 bits) | first (18) | last (18)
//	m | name -> metadata (format, time zone, key fingerprint, purge mark, ingest offsets)
//	s | pseudonym -> consent: opted out since, opted in since, reassigned at (consent.go)
//	j | id -> a gateway job queued by a version before the job journal
//	         (jobs.go); serve moves them to store/journal at start
//	c | key -> a staff one-time code record, opaque (codes.go)
//
// Day first is chosen for retention: everything that expires on a day is one
// contiguous key range, so a purge is one DeleteRange plus a compaction of
// exactly that range, and its cost grows with what expires, not with what is
// stored. The whole of a day's tombstoned range is dropped by the compaction,
// so nothing older than the window stays on disk after a purge; `serve` purges
// hourly, which keeps the bound at window + 1 hour (the brief allows 24 h).
// Two Pebble files would keep expired keys past a purge, and are dealt with
// in Open: a reused write-ahead log keeps the old log's tail (so logs are
// never reused, see fs.go), and the MANIFEST records each sstable's first and
// last key (so it is rotated early). Pebble keeps one previous MANIFEST, so
// those two keys of a purged file may outlive the purge until the next
// rotation; TestPurgeWhileOpen scans every file for expired pseudonyms.
//
// # Lookups from memory
//
// A day-first layout makes a 30-day lookup 30 seeks on Pebble (130 µs
// measured on this machine); a subscriber-first layout makes it one seek
// (15-23 µs) but turns retention into a rewrite of everything stored. Neither
// meets the lookup target (p50 8 µs, p99 30 µs). So lookups never touch Pebble:
// the store keeps an index of every subscriber's live visits in memory, 8
// bytes per visit, sharded by pseudonym, and answers from it with no seek at
// all. Pebble is the durable copy; the index is derived from it, rebuilt by
// one sequential scan at Open, and updated by every write after it commits.
// The costs are stated, not hidden: memory of about 8 bytes per visit plus
// about 80 bytes per subscriber (1M subscribers with 30 days: measured in the
// README), and an Open that reads the whole store (measured in the README).
// A province-sized node sizes its memory for that; the nation partitions
// subscribers across nodes.
//
// # Consent
//
// A subscriber may opt out (OptOut: their visits are erased in the same
// synced batch that records it), opt in again (OptIn), and a number may
// pass to a new holder (Reassigned: what came before is erased and never
// returned). Options.Collect chooses whether subscribers who never chose
// are recorded (CollectAll) or not (CollectOptedIn). Apply checks every
// event against the subscriber's record, so the records are held in memory
// in the index's shards, loaded at Open: with no record at all the check is
// one branch an event; otherwise one map lookup per subscriber of a batch,
// measured by BenchmarkFoldConsent at roughly 50-70 ns an event on this
// machine with a million records, against about 600 ns an event for a
// whole synced Apply.
//
// # Writes
//
// All writes (Apply, Erase, Purge, and the consent changes) are serialised: each computes the new
// value of a subscriber-day from the index, commits a Pebble batch, then
// updates the index. Readers never wait for Pebble. Apply commits with fsync
// before returning: a batch it acknowledged survives kill -9, and the batch
// may carry the source offset it reached, so a feed resumes exactly there.
package store
