package mgmtd

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
)

// OpenAPI builds the OpenAPI 3.1 document of the route table: every path
// and method, its parameters, and the JSON Schemas of its request and
// response bodies, made by reflection from the api package's types (so
// the document cannot drift from the wire types).
func (s *Server) OpenAPI() map[string]any {
	g := &schemaGen{components: map[string]any{}}
	problem := g.ref(reflect.TypeOf(api.Problem{}))
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true,
				"schema": map[string]any{"type": "string"}})
		}
		for _, name := range sortedKeys(rt.Query) {
			params = append(params, map[string]any{"name": name, "in": "query", "description": rt.Query[name],
				"schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		switch {
		case rt.Request != nil:
			op["requestBody"] = map[string]any{"required": rt.Method != http.MethodPost || !strings.HasSuffix(rt.Path, "/"+api.ActionShutdown),
				"content": map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.Request))}}}
		case rt.RawBody:
			op["requestBody"] = map[string]any{"required": true,
				"content": map[string]any{"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}}}
		}
		status := rt.Status
		if status == 0 {
			status = http.StatusOK
		}
		if strings.HasSuffix(rt.Path, "/ws") {
			status = http.StatusSwitchingProtocols
		}
		ok := map[string]any{"description": http.StatusText(status)}
		switch {
		case rt.Response != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.Response))}}
		case rt.ContentType != "":
			ok["content"] = map[string]any{rt.ContentType: map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		op["responses"] = map[string]any{
			strconv.Itoa(status): ok,
			"default": map[string]any{"description": "An RFC 9457 problem naming the field at fault",
				"content": map[string]any{api.ProblemContentType: map[string]any{"schema": problem}}},
		}
		if rt.Access == Public {
			op["security"] = []any{}
		}
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Plinth management API",
			"version":     api.Version,
			"description": "The remote API of a Plinth host. Log in with POST " + api.MgmtdSessionsPath + " and send the token as a bearer token; errors are RFC 9457 problem details.",
		},
		"servers":  []any{map[string]any{"url": "/"}},
		"security": []any{map[string]any{"bearer": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas":         g.components,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// operationID is a stable name for a route, e.g. "post_api_v1_vms_id_start".
func operationID(rt Route) string {
	p := strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(strings.Trim(rt.Path, "/"))
	return strings.ToLower(rt.Method) + "_" + p
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.OpenAPI())
}

// schemaGen makes JSON Schemas (2020-12, as OpenAPI 3.1 uses) of Go types;
// named struct types become components referred to by $ref.
type schemaGen struct {
	components map[string]any
}

var timeType = reflect.TypeOf(time.Time{})

func (g *schemaGen) ref(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Struct && t.Name() != "":
		if _, ok := g.components[t.Name()]; !ok {
			g.components[t.Name()] = nil // placeholder: recursion stops here
			g.components[t.Name()] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + t.Name()}
	case t.Kind() == reflect.Struct:
		return g.object(t)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	g.fields(t, props)
	// No "required" list: the decoder takes any subset of the fields and
	// validation names what is missing; answers always carry the fields
	// that have no omitempty.
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		prop := g.ref(f.Type)
		for k, v := range schemaBounds(f.Tag.Get("schema")) {
			prop[k] = v
		}
		props[name] = prop
	}
}

// schemaBounds reads a field's `schema:"minimum=0,maximum=4094"` tag: the
// numeric keywords of its JSON Schema.
func schemaBounds(tag string) map[string]any {
	out := map[string]any{}
	for _, kv := range strings.Split(tag, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if n, err := strconv.ParseInt(v, 10, 64); ok && err == nil && (k == "minimum" || k == "maximum") {
			out[k] = n
		}
	}
	return out
}
