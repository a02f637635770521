package audit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the access log a leaf: the standard library, the note
// format, zerolog and the domain's Pseudonym, nothing else of the project.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"golang.org/x/mod/sumdb/note":              true,
		"github.com/rs/zerolog":                    true,
		"github.com/roamtrail/roamtrail/itinerary": true,
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if !strings.Contains(first, ".") || allowed[imp] {
			continue
		}
		t.Errorf("privacy/audit imports %s", imp)
	}
}
