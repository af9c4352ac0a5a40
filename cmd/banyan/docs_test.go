package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	envTwin = regexp.MustCompile(`BANYAN_([A-Z_]+)=`)
)

// TestDocsStandAlone is issue 21's defect 5: the project's own docs work in
// a fresh clone — every relative link of README.md and docs/*.md names a
// file in the repository — and the environment twins the README shows for
// `make run` are flags of `banyan up`.
func TestDocsStandAlone(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "SECURITY.md"))
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "#") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target := filepath.Join(filepath.Dir(doc), strings.SplitN(link, "#", 2)[0])
			rel, err := filepath.Rel(root, target)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links outside the repository: %s", doc, link)
				continue
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s links to a missing file: %s", doc, link)
			}
		}
	}

	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	out, _, _ := cli(t, "up", "--help")
	seen := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasSuffix(strings.TrimSpace(strings.SplitN(line, "#", 2)[0]), "make run") {
			continue
		}
		for _, m := range envTwin.FindAllStringSubmatch(line, -1) {
			flag := "--" + strings.ReplaceAll(strings.ToLower(m[1]), "_", "-")
			seen++
			if !strings.Contains(out, flag) {
				t.Errorf("README shows BANYAN_%s=, but banyan up has no %s", m[1], flag)
			}
		}
	}
	if seen == 0 {
		t.Error("README shows no environment twin for make run")
	}
}
