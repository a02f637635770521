package feed

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
	"github.com/roamtrail/roamtrail/itinerary/msisdn"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var _ RegionParser = (*itinerary.Catalog)(nil)

// MustCatalog returns the embedded region catalog or stops the test.
func MustCatalog(tb testing.TB) *itinerary.Catalog {
	tb.Helper()
	c, err := itinerary.NewCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// readAll reads r to its end and describes each result of Next on a line:
// an event, a row error, or the error that ended the input.
func readAll(tb testing.TB, r *Reader) []string {
	tb.Helper()
	var out []string
	for i := 0; ; i++ {
		if i > 10000 {
			tb.Fatal("Next never ends")
		}
		ev, err := r.Next()
		var rowErr *RowError
		switch {
		case err == nil:
			out = append(out, fmt.Sprintf("%s %s %v", ev.MSISDN, ev.Time.UTC().Format(time.RFC3339), ev.Region))
		case errors.As(err, &rowErr):
			if !errors.Is(err, ErrRow) {
				tb.Errorf("%v does not wrap ErrRow", err)
			}
			out = append(out, err.Error())
		case errors.Is(err, io.EOF):
			return out
		default:
			return append(out, "stop: "+err.Error())
		}
	}
}

const (
	hdr = "msisdn,time,region\n"
	t1  = "2026-11-27T08:15:00+08:00"
)

func TestReader(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	huge := strings.Repeat("y", 3<<20) // longer than the reader's buffer
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty input", "", nil},
		{"header only", hdr, nil},
		{"blank lines only", "\n\n  \n", nil},
		{
			"one row",
			hdr + "13800138000," + t1 + ",130100\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"every spelling of a number",
			hdr + "13800138000," + t1 + ",440\n8613800138000," + t1 + ",440\n+86 138-0013-8000," + t1 + ",440\n008613800138000," + t1 + ",440\n",
			slices.Repeat([]string{"+8613800138000 2026-11-27T00:15:00Z 440"}, 4),
		},
		{
			"columns in another order, others ignored, header case and spaces",
			" Region , extra ,TIME, msisdn \n130100,x," + t1 + ",13800138000\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"BOM",
			"\xef\xbb\xbf" + hdr + "13800138000," + t1 + ",130100\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"BOM alone on a first line",
			"\xef\xbb\xbf\n" + hdr + "13800138000," + t1 + ",130100\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"quoted fields",
			`"msisdn","time","region","note"` + "\n" + `"13800138000","` + t1 + `","130100","a, b ""c"""` + "\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"CRLF",
			"msisdn,time,region\r\n13800138000," + t1 + ",130100\r\n13800138001," + t1 + ",440\r\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100", "+8613800138001 2026-11-27T00:15:00Z 440"},
		},
		{
			"blank lines",
			"\n" + hdr + "\n\n13800138000," + t1 + ",130100\n \t\n\r\n13800138001," + t1 + ",440\n\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100", "+8613800138001 2026-11-27T00:15:00Z 440"},
		},
		{
			"last line without a newline",
			hdr + "13800138000," + t1 + ",130100",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"region aliases are canonical",
			hdr + "13800138000," + t1 + ",454\n13800138000," + t1 + ",500200\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 810000", "+8613800138000 2026-11-27T00:15:00Z 500100"},
		},
		{
			"UTC and other offsets",
			hdr + "13800138000,2026-11-27T16:00:00Z,440\n13800138000,2026-11-27T03:00:00-05:00,440\n13800138000,2026-11-27T08:15:00.5+08:00,440\n",
			[]string{"+8613800138000 2026-11-27T16:00:00Z 440", "+8613800138000 2026-11-27T08:00:00Z 440", "+8613800138000 2026-11-27T00:15:00Z 440"},
		},
		{"missing header column", "msisdn,time\n13800138000," + t1 + "\n", []string{"stop: feed: bad header: want columns msisdn,time,region"}},
		{"not a header", "13800138000," + t1 + ",130100\n", []string{"stop: feed: bad header: want columns msisdn,time,region"}},
		{
			"wrong field count",
			hdr + "13800138000," + t1 + "\n13800138000," + t1 + ",130100,x\n13800138000," + t1 + ",130100\n",
			[]string{"line 2: 2 fields, want 3", "line 3: 4 fields, want 3", "+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"bad numbers",
			hdr + "1380013800x," + t1 + ",130100\n+99913800138000," + t1 + ",130100\n12345," + t1 + ",130100\n," + t1 + ",130100\n" + strings.Repeat("1", 40) + "," + t1 + ",130100\n",
			[]string{
				"line 2: msisdn: not a phone number: unexpected character",
				"line 3: msisdn: not a phone number: invalid country code",
				"line 4: msisdn: not a valid number",
				"line 5: msisdn: empty number",
				"line 6: msisdn: not a phone number: too long",
			},
		},
		{
			"bad times",
			hdr + "13800138000,2026-11-27T08:15:00,130100\n13800138000,27/11/2026 08:15,130100\n13800138000,,130100\n13800138000,2026-11-27,130100\n",
			slices.Repeat([]string{"time: want RFC 3339 with an offset, e.g. 2026-11-27T08:15:00+08:00"}, 4),
		},
		{
			"bad regions",
			hdr + "13800138000," + t1 + ",1301\n13800138000," + t1 + ",130199\n13800138000," + t1 + ",\n13800138000," + t1 + ",Beijing\n",
			[]string{
				"line 2: region: itinerary: bad region code: want 3 or 6 digits",
				"line 3: region: itinerary: unknown region 130199",
				"line 4: region: itinerary: bad region code: want 3 or 6 digits",
				"line 5: region: itinerary: bad region code: want 3 or 6 digits",
			},
		},
		{
			"over-long line",
			hdr + "13800138000," + t1 + "," + long + "\n13800138001," + t1 + ",440\n",
			[]string{"line 2: line too long", "+8613800138001 2026-11-27T00:15:00Z 440"},
		},
		{
			"line longer than the buffer",
			hdr + huge + "\n13800138001," + t1 + ",440\n" + huge,
			[]string{"line 2: line too long", "+8613800138001 2026-11-27T00:15:00Z 440", "line 4: line too long"},
		},
		{
			"JSON Lines",
			`{"msisdn":"13800138000","time":"` + t1 + `","region":"130100"}` + "\n" +
				`{"region":"454","time":"2026-11-27T16:00:00Z","msisdn":"+8613800138001","other":[1,2]}` + "\n\n" +
				`{"msisdn":"13800138002","time":"` + t1 + `","region":"440"}`,
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100", "+8613800138001 2026-11-27T16:00:00Z 810000", "+8613800138002 2026-11-27T00:15:00Z 440"},
		},
		{
			"JSON Lines with a BOM and CRLF",
			"\xef\xbb\xbf" + `{"msisdn":"13800138000","time":"` + t1 + `","region":"130100"}` + "\r\n",
			[]string{"+8613800138000 2026-11-27T00:15:00Z 130100"},
		},
		{
			"bad JSON Lines",
			`{"msisdn":"13800138000","time":"` + t1 + `","region":"130100"}` + "\n" +
				`{"msisdn":13800138000,"time":"` + t1 + `","region":"130100"}` + "\n" +
				"msisdn,time,region\n" +
				`{"msisdn":"13800138000","time":"` + t1 + `"}` + "\n" +
				`{"msisdn":"13800138000",` + "\n",
			[]string{
				"+8613800138000 2026-11-27T00:15:00Z 130100",
				"line 2: not a JSON object with msisdn, time and region",
				"line 3: not a JSON object with msisdn, time and region",
				"line 4: region: itinerary: bad region code: want 3 or 6 digits",
				"line 5: not a JSON object with msisdn, time and region",
			},
		},
	}
	c := MustCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), c)
			got := readAll(t, r)
			for i := range tt.want {
				if !strings.HasPrefix(tt.want[i], "line ") && !strings.HasPrefix(tt.want[i], "stop: ") && !strings.HasPrefix(tt.want[i], "+") {
					tt.want[i] = fmt.Sprintf("line %d: %s", i+2, tt.want[i])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if !strings.Contains(tt.name, "header") && r.Offset() != int64(len(tt.in)) {
				t.Errorf("Offset = %d, want %d (the whole input)", r.Offset(), len(tt.in))
			}
			checkNoNumbers(t, tt.in, got)
		})
	}
}

// digitRun is a run of 7 or more digits, with the separators a number may
// be written with: what a number in an error message would look like.
var digitRun = regexp.MustCompile(`\d[\d -]{5,}\d`)

// checkNoNumbers checks that no row error carries a phone number, or a
// digit run of the input long enough to be part of one.
func checkNoNumbers(t *testing.T, in string, results []string) {
	t.Helper()
	for _, res := range results {
		if !strings.HasPrefix(res, "line ") && !strings.HasPrefix(res, "stop: ") {
			continue // an event: its number is the point
		}
		msg := res[strings.Index(res, ":")+1:]
		// The example time in the time error is the only long digit run
		// allowed.
		msg = strings.ReplaceAll(msg, "2026-11-27T08:15:00+08:00", "")
		if m := digitRun.FindString(msg); m != "" {
			t.Errorf("row error %q holds the digits %q", res, m)
		}
		for _, f := range strings.FieldsFunc(in, func(r rune) bool { return r == ',' || r == '\n' || r == '"' }) {
			if len(f) >= 7 && strings.Contains(msg, f) {
				t.Errorf("row error %q repeats the input field %q", res, f)
			}
		}
	}
}

func TestReaderLineAndOffset(t *testing.T) {
	in := hdr + "13800138000," + t1 + ",130100\r\n\nbad\n13800138001," + t1 + ",440"
	r := NewReader(strings.NewReader(in), MustCatalog(t))
	steps := []struct {
		line   int64
		offset int
		err    bool
	}{
		{2, len(hdr) + len("13800138000,"+t1+",130100\r\n"), false},
		{4, len(hdr) + len("13800138000,"+t1+",130100\r\n\nbad\n"), true},
		{5, len(in), false},
	}
	for i, s := range steps {
		_, err := r.Next()
		if (err != nil) != s.err || r.Line() != s.line || r.Offset() != int64(s.offset) {
			t.Errorf("step %d: err %v, line %d, offset %d; want error %v, line %d, offset %d", i, err, r.Line(), r.Offset(), s.err, s.line, s.offset)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the end: %v, want io.EOF again", err)
	}
}

func TestReaderIOError(t *testing.T) {
	boom := errors.New("disk gone")
	in := io.MultiReader(strings.NewReader(hdr+"13800138000,"+t1+",130100\n"), iotest.ErrReader(boom))
	r := NewReader(in, MustCatalog(t))
	if _, err := r.Next(); err != nil {
		t.Fatalf("first row: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Errorf("after the read error: %v, want it", err)
	}
	// One byte at a time, the reader still sees whole lines.
	got := readAll(t, NewReader(iotest.OneByteReader(strings.NewReader(hdr+"13800138000,"+t1+",130100\n")), MustCatalog(t)))
	if want := []string{"+8613800138000 2026-11-27T00:15:00Z 130100"}; !slices.Equal(got, want) {
		t.Errorf("one byte at a time: %v", got)
	}
}

// TestReaderFiles reads each input file of testdata/ and compares what it
// gives with testdata/NAME.golden (go test -update rewrites them).
func TestReaderFiles(t *testing.T) {
	inputs := testdataInputs(t)
	c := MustCatalog(t)
	for _, path := range inputs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, NewReader(bytes.NewReader(in), c))
			checkNoNumbers(t, string(in), got)
			text := strings.Join(got, "\n") + "\n"
			golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if text != string(want) {
				t.Errorf("%s differs (go test -update rewrites it):\ngot\n%swant\n%s", golden, text, want)
			}
		})
	}
}

// testdataInputs lists the feed files of testdata/.
func testdataInputs(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, pat := range []string{"testdata/*.csv", "testdata/*.jsonl"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		tb.Fatal("no input files in testdata/")
	}
	slices.Sort(out)
	return out
}

func TestSplitCSV(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"", []string{""}},
		{"a", []string{"a"}},
		{"a,b,c", []string{"a", "b", "c"}},
		{",,", []string{"", "", ""}},
		{`"a,b",c`, []string{"a,b", "c"}},
		{`"a ""q"" b",c`, []string{`a "q" b`, "c"}},
		{`"",x`, []string{"", "x"}},
		{`a,"b"`, []string{"a", "b"}},
		{`"unterminated,x`, []string{"unterminated,x"}},
		{`"a"junk,b`, []string{"a", "b"}},
		{` "a" ,b`, []string{` "a" `, "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var got []string
			for _, f := range splitCSV([]byte(tt.line), nil) {
				got = append(got, string(f))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("splitCSV(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

// quoteCSV writes fields as a CSV line, every field quoted.
func quoteCSV(fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strings.ReplaceAll(f, `"`, `""`) + `"`)
	}
	return b.String()
}

// FuzzSplitCSV checks that quoting then splitting gives the fields back,
// and that splitting any line never panics.
func FuzzSplitCSV(f *testing.F) {
	f.Add("a", "b,c", `d "e"`)
	f.Add("", "", "")
	f.Add(`"`, `""`, ",")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		fields := []string{a, b, c}
		var got []string
		for _, g := range splitCSV([]byte(quoteCSV(fields)), nil) {
			got = append(got, string(g))
		}
		if !slices.Equal(got, fields) {
			t.Errorf("splitCSV(%q) = %q, want %q", quoteCSV(fields), got, fields)
		}
		raw := a + "," + b + "," + c
		if n := len(splitCSV([]byte(raw), nil)); n < 1 || n > strings.Count(raw, ",")+1 {
			t.Errorf("splitCSV(%q) gave %d fields", raw, n)
		}
	})
}

// FuzzReader reads arbitrary input: it must never panic or loop, every
// event must carry an E.164 number and a canonical catalog region, and no
// row error may carry a number.
func FuzzReader(f *testing.F) {
	for _, path := range testdataInputs(f) {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(hdr + "13800138000," + t1 + ",130100\n"))
	f.Add([]byte("\xef\xbb\xbf{\"msisdn\":\"13800138000\",\"time\":\"" + t1 + "\",\"region\":\"454\"}"))
	c := MustCatalog(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), c)
		var line int64
		for i := 0; ; i++ {
			if i > len(in)+2 {
				t.Fatalf("%d results from %d bytes", i, len(in))
			}
			ev, err := r.Next()
			if r.Line() < line || r.Offset() > int64(len(in)) {
				t.Fatalf("line %d after %d, offset %d of %d", r.Line(), line, r.Offset(), len(in))
			}
			line = r.Line()
			var rowErr *RowError
			switch {
			case err == nil:
				if n, perr := msisdn.Parse(ev.MSISDN); perr != nil || string(n) != ev.MSISDN || !strings.HasPrefix(ev.MSISDN, "+") {
					t.Fatalf("event with number %q (%v)", ev.MSISDN, perr)
				}
				info, ok := c.Lookup(ev.Region)
				if !ok || info.Canonical != ev.Region {
					t.Fatalf("event with region %v", ev.Region)
				}
				if ev.Time.IsZero() {
					t.Fatal("event without a time")
				}
			case errors.As(err, &rowErr):
				if rowErr.Line != r.Line() {
					t.Fatalf("row error of line %d at line %d", rowErr.Line, r.Line())
				}
				if m := digitRun.FindString(strings.ReplaceAll(err.Error(), t1, "")); m != "" && !strings.HasPrefix(err.Error(), fmt.Sprintf("line %s:", m)) {
					t.Fatalf("row error %q holds the digits %q", err, m)
				}
			case err == io.EOF:
				return
			default:
				if !errors.Is(err, ErrHeader) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
		}
	})
}
