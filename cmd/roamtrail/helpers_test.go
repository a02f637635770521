package main

import (
	"io"
	"time"
)

// blockingReader is a standard input that stays open until release closes.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Read(p []byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

func sleep() { time.Sleep(5 * time.Millisecond) }
