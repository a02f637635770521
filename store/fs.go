package store

import "github.com/cockroachdb/pebble/v2/vfs"

// noRecycleFS makes Pebble create each write-ahead log afresh instead of
// reusing an obsolete one. A reused log is overwritten only as far as the new
// log reaches, so its tail would keep the visits of days a purge has already
// deleted: on disk, past retention, for as long as the file keeps being
// reused. vfs.FS allows an implementation to decline reuse this way; the
// cost is a new file per memtable (64 MiB of writes by default).
type noRecycleFS struct{ vfs.FS }

func (fs noRecycleFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.FS.Remove(oldname); err != nil {
		return nil, err
	}
	return fs.FS.Create(newname, category)
}
