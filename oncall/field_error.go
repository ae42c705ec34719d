package oncall

import "github.com/callroom/callroom"

// FieldError is the shared callroom.FieldError: the engine reports bad input
// with the dotted JSON path of the field ("rotations.0.shift_length") so the
// API answers 422 naming it.
type FieldError = callroom.FieldError
