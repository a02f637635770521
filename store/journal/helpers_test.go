package journal

// crash drops j as a killed process would: what is buffered is lost, files
// and the lock are let go, nothing more is written or synced.
func (j *Journal) crash() {
	j.mu.Lock()
	j.closed = true
	j.buf = nil
	j.mu.Unlock()
	close(j.quit)
	<-j.stopped
	j.f.Close()
	j.lock.Close()
}
