// Package feed reads location events (CSV or JSON Lines) and ingests them
// into the visit store in batches.
package feed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
)

// Errors. A row's error names its line and the reason, never the number.
var (
	ErrHeader = errors.New("feed: bad header")
	ErrRow    = errors.New("feed: bad row")
)

// RowError is a rejected row: the caller counts it and goes on.
type RowError struct {
	Line   int64
	Reason string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }
func (e *RowError) Unwrap() error { return ErrRow }

// RegionParser turns a region field into a region (itinerary.Catalog).
type RegionParser interface {
	ParseRegion(s string) (itinerary.Region, error)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// maxLine bounds one input line. A valid row is under 80 bytes; a longer
// line is rejected without being held whole in memory.
const maxLine = 4096

// Reader reads events. The format is told by the first byte: '{' for JSON
// Lines, anything else for CSV with a header naming the columns msisdn,
// time and region (in any order; other columns are ignored).
type Reader struct {
	br      *bufio.Reader
	regions RegionParser
	line    int64
	offset  int64
	json    bool
	started bool
	col     [3]int // column of msisdn, time, region
	ncol    int
	fields  [][]byte
	numbers map[string]msisdn.Number // parse cache: a feed repeats numbers
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader, regions RegionParser) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 1<<20), regions: regions, numbers: make(map[string]msisdn.Number)}
}

// Line is the number of the last line read, counting from 1.
func (r *Reader) Line() int64 { return r.line }

// Offset is the byte offset just past the last line read.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next event. A bad row is a *RowError (wrapping ErrRow)
// and reading may go on; io.EOF ends the input; any other error is final.
func (r *Reader) Next() (itinerary.Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return itinerary.Event{}, err
		}
		if !r.started {
			// A BOM from a spreadsheet or a Windows tool, before either
			// format: left on, it would hide a JSON Lines file's '{'.
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !r.started {
			r.started = true
			if line[0] == '{' {
				r.json = true
			} else {
				if err := r.header(line); err != nil {
					return itinerary.Event{}, err
				}
				continue
			}
		}
		var ev itinerary.Event
		if r.json {
			err = r.parseJSON(line, &ev)
		} else {
			err = r.parseCSV(line, &ev)
		}
		if err != nil {
			return itinerary.Event{}, &RowError{Line: r.line, Reason: err.Error()}
		}
		return ev, nil
	}
}

// readLine returns the next line without its end, or a RowError for an
// over-long line (which it skips to its end).
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	r.offset += int64(len(line))
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxLine {
		r.line++
		for errors.Is(err, bufio.ErrBufferFull) {
			var more []byte
			more, err = r.br.ReadSlice('\n')
			r.offset += int64(len(more))
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, &RowError{Line: r.line, Reason: "line too long"}
	}
	if err == io.EOF && len(line) > 0 {
		err = nil // a last line without a newline
	}
	if err != nil {
		return nil, err
	}
	r.line++
	line = bytes.TrimRight(line, "\r\n")
	return line, nil
}

func (r *Reader) header(line []byte) error {
	r.col = [3]int{-1, -1, -1}
	fields := splitCSV(line, nil)
	for i, f := range fields {
		switch strings.ToLower(strings.TrimSpace(string(f))) {
		case "msisdn":
			r.col[0] = i
		case "time":
			r.col[1] = i
		case "region":
			r.col[2] = i
		}
	}
	if r.col[0] < 0 || r.col[1] < 0 || r.col[2] < 0 {
		return fmt.Errorf("%w: want columns msisdn,time,region", ErrHeader)
	}
	r.ncol = len(fields)
	return nil
}

func (r *Reader) parseCSV(line []byte, ev *itinerary.Event) error {
	r.fields = splitCSV(line, r.fields[:0])
	if len(r.fields) != r.ncol {
		return fmt.Errorf("%d fields, want %d", len(r.fields), r.ncol)
	}
	return r.event(r.fields[r.col[0]], r.fields[r.col[1]], r.fields[r.col[2]], ev)
}

type jsonRow struct {
	MSISDN string `json:"msisdn"`
	Time   string `json:"time"`
	Region string `json:"region"`
}

func (r *Reader) parseJSON(line []byte, ev *itinerary.Event) error {
	var row jsonRow
	if err := json.Unmarshal(line, &row); err != nil {
		return errors.New("not a JSON object with msisdn, time and region")
	}
	return r.event([]byte(row.MSISDN), []byte(row.Time), []byte(row.Region), ev)
}

func (r *Reader) event(num, tm, region []byte, ev *itinerary.Event) error {
	n, err := r.number(num)
	if err != nil {
		return err // msisdn's errors name the field already, never the number
	}
	t, err := time.Parse(time.RFC3339, string(bytes.TrimSpace(tm)))
	if err != nil {
		return errors.New("time: want RFC 3339 with an offset, e.g. 2026-11-27T08:15:00+08:00")
	}
	reg, err := r.regions.ParseRegion(string(bytes.TrimSpace(region)))
	if err != nil {
		return fmt.Errorf("region: %w", err)
	}
	*ev = itinerary.Event{MSISDN: string(n), Time: t, Region: reg}
	return nil
}

// maxCached bounds the number cache; past it the cache starts over, which
// only costs speed.
const maxCached = 1 << 21

func (r *Reader) number(b []byte) (msisdn.Number, error) {
	b = bytes.TrimSpace(b)
	if n, ok := r.numbers[string(b)]; ok {
		return n, nil
	}
	n, err := msisdn.Parse(string(b))
	if err != nil {
		return "", err
	}
	if len(r.numbers) >= maxCached {
		clear(r.numbers)
	}
	r.numbers[string(b)] = n
	return n, nil
}

// splitCSV splits a CSV line into fields, honouring double quotes (a quoted
// field may hold commas and doubled quotes). Fields alias line unless they
// had doubled quotes.
func splitCSV(line []byte, dst [][]byte) [][]byte {
	for {
		if len(line) > 0 && line[0] == '"' {
			var f []byte
			i := 1
			for i < len(line) {
				if line[i] == '"' {
					if i+1 < len(line) && line[i+1] == '"' {
						f = append(f, '"')
						i += 2
						continue
					}
					i++
					break
				}
				f = append(f, line[i])
				i++
			}
			dst = append(dst, f)
			line = line[i:]
			j := bytes.IndexByte(line, ',')
			if j < 0 {
				return dst
			}
			line = line[j+1:]
			continue
		}
		j := bytes.IndexByte(line, ',')
		if j < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:j])
		line = line[j+1:]
	}
}
