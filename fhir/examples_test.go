package fhir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// examplesDir is where scripts/test-deps.sh installs the official R4
// examples (npm package hl7.fhir.r4.examples@4.0.1).
func examplesDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "scripts", "fhir-engine", "node_modules", "hl7.fhir.r4.examples")
	if _, err := os.Stat(filepath.Join(dir, "Encounter-example.json")); err != nil {
		t.Fatalf("the official R4 examples are not installed in %s: run scripts/test-deps.sh (make test does)", dir)
	}
	return dir
}

// Every official example reads as its own type; Encounters, CareTeams,
// Practitioners and Bundles decode; and each decoder refuses the other
// types (golang-fhir-models' Unmarshal alone would accept them).
func TestOfficialExamplesDecode(t *testing.T) {
	t.Parallel()
	dir := examplesDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range files {
		name := filepath.Base(f)
		typ, _, ok := strings.Cut(name, "-")
		if !ok || name == "package.json" || typ == ".index.json" {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := resourceTypeOf(raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != typ {
			continue // e.g. "Bundle-..." files named after their content
		}
		counts[typ]++
		switch typ {
		case "Encounter":
			if _, status, err := decodeEncounter(raw); err != nil || status == "" {
				t.Errorf("%s: %v (status %q)", name, err, status)
			}
		case "CareTeam":
			if _, _, err := decodeCareTeam(raw); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case "Practitioner":
			if _, err := decodePractitioner(raw); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case "Bundle":
			b, err := models.UnmarshalBundle(raw)
			if err == nil {
				_, err = decodeBundle(raw, b.Type)
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			if _, _, err := decodeEncounter(raw); err == nil {
				t.Errorf("%s: a %s decoded as an Encounter", name, typ)
			}
			if _, _, err := decodeCareTeam(raw); err == nil {
				t.Errorf("%s: a %s decoded as a CareTeam", name, typ)
			}
		}
	}
	for _, typ := range []string{"Encounter", "CareTeam", "Practitioner", "Bundle"} {
		if counts[typ] == 0 {
			t.Errorf("no %s examples found", typ)
		}
	}
	t.Logf("examples decoded: %v", counts)
}
