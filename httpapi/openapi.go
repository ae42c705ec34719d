package httpapi

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"sync"
)

// The OpenAPI document is kept as one fragment per domain (users, schedules,
// pages, ...) under openapi/, merged at start-up. base.json carries the
// header and shared components; every other fragment adds paths and schemas.
//
//go:embed openapi/*.json
var openAPIFiles embed.FS

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
	openAPIErr  error
)

// OpenAPIDocument returns the merged OpenAPI 3.1 document.
func OpenAPIDocument() ([]byte, error) {
	openAPIOnce.Do(func() { openAPIDoc, openAPIErr = mergeOpenAPI() })
	return openAPIDoc, openAPIErr
}

func mergeOpenAPI() ([]byte, error) {
	names, err := fs.Glob(openAPIFiles, "openapi/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var doc map[string]any
	if err := readJSON("openapi/base.json", &doc); err != nil {
		return nil, err
	}
	paths := doc["paths"].(map[string]any)
	comps := doc["components"].(map[string]any)
	for _, name := range names {
		if name == "openapi/base.json" {
			continue
		}
		var frag struct {
			Paths      map[string]any            `json:"paths"`
			Components map[string]map[string]any `json:"components"`
		}
		if err := readJSON(name, &frag); err != nil {
			return nil, err
		}
		for p, v := range frag.Paths {
			if _, dup := paths[p]; dup {
				return nil, fmt.Errorf("%s: path %s is defined twice", name, p)
			}
			paths[p] = v
		}
		for kind, entries := range frag.Components {
			m, _ := comps[kind].(map[string]any)
			if m == nil {
				m = map[string]any{}
				comps[kind] = m
			}
			for k, v := range entries {
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("%s: components.%s.%s is defined twice", name, kind, k)
				}
				m[k] = v
			}
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

func readJSON(name string, v any) error {
	b, err := openAPIFiles.ReadFile(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := OpenAPIDocument()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(doc) //nolint:errcheck
}
