package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// dataDir is shared/data as seen from this directory: the shared folder sits
// beside the repository.
const dataDir = "../../../../shared/data"

// TestCatalogUpToDate checks that the committed catalog.tsv is what go
// generate writes today, so that an edit to the curated names or the data
// cannot be committed without the catalog that goes with it.
func TestCatalogUpToDate(t *testing.T) {
	if _, err := os.Stat(dataDir); err != nil {
		t.Skipf("reference data not found beside the repository: %v", err)
	}
	got, err := generate(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "catalog.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("catalog.tsv is stale: run go generate ./itinerary and review the diff")
	}
}

func TestTidy(t *testing.T) {
	tests := map[string]string{
		"Netherlands (Kingdom of the Netherlands)":     "Netherlands",
		"Guam (United States of America)":              "Guam",
		"Greece":                                       "Greece",
		"Saint Helena, Ascension and Tristan da Cunha": "Saint Helena, Ascension and Tristan da Cunha",
	}
	for in, want := range tests {
		if got := tidy(in); got != want {
			t.Errorf("tidy(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGSM7(t *testing.T) {
	for s, want := range map[string]bool{"Xi'an": true, "Lüliang": true, "Réunion": true, "Garzê": false, "São Tomé": false, "北京": false, "a\tb": false} {
		if got := gsm7(s); got != want {
			t.Errorf("gsm7(%q) = %t, want %t", s, got, want)
		}
	}
}
