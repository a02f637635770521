// Package audit is the access log: a tamper-evident, append-only record of
// every access to location data and every change of consent, which auditors
// read and verify.
//
// # The contract
//
// Whoever is about to release location data, or change consent, first
// calls Log.Append and releases nothing unless it returns nil: the entry is
// then on disk. If Append fails, the request is refused. After a failed
// write or sync the log fails closed, refusing every Append until it is
// reopened. A caller that holds a durable record of its own, from which it
// writes the entry again after a crash, may instead call Write, release,
// and keep that record until Synced returns: the gateway's queued job does,
// so that an itinerary goes while its entry's fsync runs.
//
// An entry records who (Actor, Role), what (Action), about whom (Subject, a
// pseudonym; Masked, the number as staff saw it), how far back (Window),
// under which ticket, and the outcome. Never the itinerary, never a number:
// Append refuses text with seven or more digits in a row.
//
// # On disk
//
// The log lives in a directory of its own (the data dir's audit/, mode
// 0700):
//
//	audit-000001-20261127.jsonl   entries, one JSON object a line, mode 0600
//	audit-000002-20261128.jsonl   a new file each UTC day, or past 64 MiB
//	checkpoints                   signed notes, one after another
//	checkpoint.latest             the newest of them
//	LOCK                          flocked by the one process appending
//
// A line is the entry's canonical encoding (fields in a fixed order, the
// time in UTC to the microsecond, encoding/json's escaping) with its hash
// last:
//
//	{"seq":7,"time":"2026-11-27T08:15:00.000000Z","actor":"op-17","role":"agent","action":"staff-lookup","subject":"a1000000000000000000000000000000","masked":"138****8000","window":15,"ticket":"T-42","outcome":"ok","detail":"","prev":"<hex>","hash":"<hex>"}
//
// Hash is the SHA-256 of the line without its hash field; Prev is the
// previous entry's Hash, and the first entry's Prev the SHA-256 of a genesis
// string naming the log. Seq counts from 1 without gaps. A line in any other
// form is not accepted, so a line cannot be rewritten into an equivalent one.
//
// # Checkpoints
//
// A checkpoint is a note (golang.org/x/mod/sumdb/note) signed with the
// log's Ed25519 key, stating the log's name, a Seq and the Hash of the entry
// at that Seq. Log.RunCheckpoints writes one a minute while there are new
// entries, and Close writes the last. Anyone can rewrite a hash chain from
// the first changed line on; nobody without the key can sign a checkpoint
// for the result.
//
// # What Verify detects
//
// Against someone who can write the audit dir but does not hold the signing
// key, Verify detects an edited, inserted, deleted or reordered line (the
// hashes and links break, or a signed checkpoint no longer matches), a
// deleted file, a log cut at the head, and a log cut at the tail to before a
// checkpoint still in the dir. Cutting the tail together with the
// checkpoints that mention it leaves a shorter log that is consistent in
// itself: only a checkpoint kept outside the dir (VerifyOptions.Checkpoint,
// the auditor's copy of checkpoint.latest from the last audit) shows it.
// Whoever holds the signing key can rewrite everything after the auditor's
// checkpoint; keep the key outside the data dir in production (see
// LoadOrCreateSigner).
//
// # Retention
//
// Log.Prune deletes files whose day ended more than Options.Retention (three
// years by default, as PIPL asks of processing records) ago. Before deleting
// a file it signs a prune anchor, a checkpoint marked as such, for the file's
// last entry; Verify accepts a log that starts right after an anchor and
// reports that Seq as Report.Anchor. A log that starts later than Seq 1
// without one was cut, and is ErrTruncated.
//
// # Costs
//
// Append encodes and hashes a line in a few microseconds and writes it
// under a mutex; appenders then share fsyncs (one covers every line written
// before it began), at most one every Options.MinSyncInterval, so an
// append waits about one fsync and appends are not serialised by them; see
// BenchmarkAppend. Last reads
// backwards from the newest entry and usually stops within the first chunk;
// Scan and Verify read everything they are asked about once.
package audit
