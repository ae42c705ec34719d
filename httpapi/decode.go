package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// decode reads a JSON body into v strictly: unknown fields, trailing data,
// wrong types and oversized bodies are answered here with a problem naming
// the field, so malformed input never reaches the domain or the database.
// It reports whether the handler should go on.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeProblem(w, Problem{Type: problemBase + "unsupported-media-type", Status: http.StatusUnsupportedMediaType,
				Detail: "send the body as application/json"})
			return false
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() || !atEOF(dec) {
			badRequest(w, "", "unexpected data after the JSON value")
			return false
		}
		return true
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, Problem{Type: problemBase + "too-large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)})
	case errors.Is(err, io.EOF):
		badRequest(w, "", "the request body is empty; send a JSON object")
	case errors.As(err, &syn):
		badRequest(w, "", fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn))
	case errors.Is(err, io.ErrUnexpectedEOF):
		badRequest(w, "", "malformed JSON: the body ends early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		badRequest(w, field, fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type.String()), typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		badRequest(w, name, "unknown field")
	default:
		badRequest(w, "", "malformed JSON: "+err.Error())
	}
	return false
}

func atEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	case goType == "string", strings.HasSuffix(goType, "UUID"), strings.HasSuffix(goType, "Time"):
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"), strings.HasPrefix(goType, "*[]"):
		return "an array"
	}
	return "an object"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client is gone
}
