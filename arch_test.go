package roamtrail_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the dependency arrows of DEVELOPERS.md honest: the
// domain imports no project package, smsgw and store never import each
// other, privacy stays a leaf, and only cmd sees everything.
func TestImportGraph(t *testing.T) {
	const mod = "github.com/roamtrail/roamtrail/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// allowed[top] lists the project's top-level packages a package under
	// top may import (besides its own sub-packages).
	allowed := map[string][]string{
		"itinerary": {},
		"fixtures":  {"itinerary"},
		"privacy":   {"itinerary"},
		"store":     {"itinerary"},
		"smsgw":     {"itinerary", "privacy"},
		"cmd":       {"itinerary", "privacy", "store", "smsgw", "fixtures"},
	}
	// Package-level exceptions. store/feed's ingest socket and
	// privacy/staff's admin socket follow one access rule (the data dir's
	// owner and root, by SO_PEERCRED), kept once in privacy/localsock, a
	// leaf that imports nothing of the project.
	exceptions := map[string][]string{
		"store/feed": {"privacy/localsock"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := strings.CutPrefix(fields[0], mod)
		if !ok {
			continue // the root test package
		}
		top, _, _ := strings.Cut(pkg, "/")
		ok2, known := allowed[top]
		if !known {
			t.Errorf("%s: top-level folder %q is not in the architecture", pkg, top)
			continue
		}
		for _, imp := range fields[1:] {
			rel, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			itop, _, _ := strings.Cut(rel, "/")
			if itop == top || contains(ok2, itop) || contains(exceptions[pkg], rel) {
				continue
			}
			t.Errorf("%s imports %s: %s may not depend on %s", pkg, rel, top, itop)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// privacy/localsock, the one exception above, must stay a leaf: were it to
// import the project, store/feed would reach privacy through it.
func TestLocalsockIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./privacy/localsock").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "github.com/roamtrail/roamtrail") {
			t.Errorf("privacy/localsock imports %s", imp)
		}
	}
}
