package staff_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the staff package on its side of the architecture: the
// standard library, zerolog, the domain and the rest of privacy. The store,
// the gateway and the SMPP session are reached through the interfaces it
// declares, wired in cmd.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/rs/zerolog":                            true,
		"github.com/roamtrail/roamtrail/itinerary":         true,
		"github.com/roamtrail/roamtrail/itinerary/msisdn":  true,
		"github.com/roamtrail/roamtrail/privacy":           true,
		"github.com/roamtrail/roamtrail/privacy/audit":     true,
		"github.com/roamtrail/roamtrail/privacy/localsock": true,
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if !strings.Contains(first, ".") || allowed[imp] {
			continue
		}
		t.Errorf("privacy/staff imports %s", imp)
	}
}
