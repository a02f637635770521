package msisdn

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Number
		err      error
	}{
		{"e164", "+8613800138000", "+8613800138000", nil},
		{"e164 without plus", "8613800138000", "+8613800138000", nil},
		{"national mobile", "13800138000", "+8613800138000", nil},
		{"international prefix", "008613800138000", "+8613800138000", nil},
		{"spaces", " 138 0013 8000 ", "+8613800138000", nil},
		{"foreign", "+447911123456", "+447911123456", nil},
		{"empty", "", "", ErrEmpty},
		{"letters", "1380013800a", "", ErrSyntax},
		{"plus inside", "86+13800138000", "", ErrSyntax},
		{"too long", strings.Repeat("1", 40), "", ErrSyntax},
		{"too short", "12", "", ErrSyntax},
		{"invalid mobile prefix", "12000138000", "", ErrInvalid},
		{"full-width digits", "１３８００１３８０００", "", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "13800") {
				t.Fatalf("error text carries the number: %v", err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+8613800138000": "138****8000",
		"+447911123456":  "447*****3456",
		"10086":          "***86",
		"1":              "*",
	} {
		n := Number(in)
		if got := n.Masked(); got != want {
			t.Errorf("Masked(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"+8613800138000", "13800138000", "008613800138000", "+447911123456", "", "+", "0", "++1", "１３８", "86 138-0013-8000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if n != "" {
				t.Fatalf("error with a result")
			}
			return
		}
		// A normal form parses to itself: normalisation is idempotent.
		again, err := Parse(string(n))
		if err != nil || again != n {
			t.Fatalf("Parse(%q) = %q, reparse = %q, %v", s, n, again, err)
		}
		if m := n.Masked(); strings.Contains(m, n.National()) && len(n.National()) > 2 {
			t.Fatalf("mask %q shows the number", m)
		}
	})
}

func TestParser(t *testing.T) {
	p := NewParser(2)
	for range 3 {
		for _, s := range []string{"13800138000", "+8613800138000", "8613900139000"} {
			want, _ := Parse(s)
			got, err := p.Parse(s)
			if err != nil || got != want {
				t.Fatalf("Parser.Parse(%q) = %q, %v; want %q", s, got, err, want)
			}
		}
	}
	if _, err := p.Parse("junk"); err == nil {
		t.Fatal("junk parsed")
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		Parse("13800138000")
	}
}

func BenchmarkParserCached(b *testing.B) {
	p := NewParser(0)
	for b.Loop() {
		p.Parse("13800138000")
	}
}
