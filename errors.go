// Package callroom holds the few types every domain package shares: the
// errors that say what went wrong in words an API client can act on. The
// HTTP layer maps them to problem details; domain packages return them
// without knowing about HTTP.
package callroom

import (
	"errors"
	"fmt"
)

// FieldError says that one field of the input is unacceptable. The HTTP
// layer answers it with 422 and names the field, so a client can point at
// the exact input to fix.
type FieldError struct {
	Field  string // JSON name, dotted for nesting: "rotations.0.shift_length"
	Detail string // human readable, never contains PHI
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// Invalid returns a *FieldError for field.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// ErrNotFound means the object does not exist or the caller may not know it
// exists. Wrap it with what was looked for: fmt.Errorf("schedule: %w", ErrNotFound).
var ErrNotFound = errors.New("not found")

// ErrForbidden means the caller is known but not allowed to do this.
var ErrForbidden = errors.New("forbidden")

// ConflictError means the request is well formed but clashes with the
// current state (a duplicate email, an acknowledged page being escalated).
type ConflictError struct {
	Field  string // optional
	Detail string
}

func (e *ConflictError) Error() string { return "conflict: " + e.Detail }

// Conflict returns a *ConflictError.
func Conflict(field, format string, args ...any) error {
	return &ConflictError{Field: field, Detail: fmt.Sprintf(format, args...)}
}

// AsFieldError reports whether err is (or wraps) a *FieldError.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
