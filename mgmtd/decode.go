package mgmtd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/plinth/plinth/api"
)

// decodeStrict decodes a JSON request body into v, refusing unknown
// fields, trailing data and bodies over limit bytes (the route's limit when
// 0). On failure it answers a problem naming the field at fault and
// returns false.
func decodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body := r.Body
	if limit > 0 {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	if err := decodeJSON(body, v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, api.Problem{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit)})
			return false
		}
		var de *decodeError
		if errors.As(err, &de) && de.field != "" {
			writeProblem(w, api.Problem{Status: http.StatusBadRequest, Detail: de.Error(), Field: de.field,
				Problems: []api.FieldProblem{{Field: de.field, Message: de.msg}}})
			return false
		}
		writeProblem(w, api.Problem{Status: http.StatusBadRequest, Detail: err.Error()})
		return false
	}
	return true
}

// decodeError is a request body that does not decode, with the field at
// fault when one can be named.
type decodeError struct {
	field, msg string
}

func (e *decodeError) Error() string {
	if e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

// decodeJSON is the one request decoder of mgmtd's own routes (the fuzz
// target): one JSON object, known fields only, nothing after it.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &tooBig):
			return err
		case errors.Is(err, io.EOF):
			return &decodeError{msg: "the request body is empty; a JSON object is expected"}
		case errors.As(err, &typeErr):
			return &decodeError{field: typeErr.Field, msg: fmt.Sprintf("is a JSON %s, want %s", typeErr.Value, typeErr.Type)}
		case errors.As(err, &syntaxErr):
			return &decodeError{msg: fmt.Sprintf("the request body is not valid JSON at byte %d: %v", syntaxErr.Offset, err)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &decodeError{field: name, msg: "is not a known field"}
		default:
			return &decodeError{msg: "the request body does not decode: " + err.Error()}
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return &decodeError{msg: "trailing data after the JSON object"}
	}
	return nil
}
