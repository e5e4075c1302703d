package conf

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// Validator is implemented by config structs that check their own ranges after decoding.
type Validator interface{ Validate() error }

// EnvPrefix prefixes every environment override.
const EnvPrefix = "ALIGNKIT_"

// Load fills out (a pointer to a struct with mapstructure tags) from the YAML file at path (may be
// "" for none), the environment, and sets ("key=value", values parsed as YAML scalars or flow
// collections). Fields the sources do not mention keep the values out already holds.
func Load(path string, sets []string, out any) error {
	return load(path, sets, out, environment(os.Environ()))
}

// Reserved are the ALIGNKIT_ environment variables that are not config keys: the program reads them
// itself (ALIGNKIT_DEBUG, ALIGNKIT_API_KEY for serve, ALIGNKIT_MPI_TIMEOUT for MPI collectives) or its
// tests do (ALIGNKIT_CLI, ALIGNKIT_MPIRUN, ALIGNKIT_CHROMIUM; mpirun passes them to every rank). Any other
// ALIGNKIT_ variable must name a key of the job being loaded.
func Reserved() []string {
	return []string{"ALIGNKIT_API_KEY", "ALIGNKIT_CHROMIUM", "ALIGNKIT_CLI", "ALIGNKIT_DEBUG", "ALIGNKIT_MPIRUN", "ALIGNKIT_MPI_TIMEOUT"}
}

// environment maps the ALIGNKIT_ variables of environ ("NAME=value" entries) to their values.
func environment(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) {
			env[name] = val
		}
	}
	return env
}

// ZeroTag is the struct tag of a field whose zero value stands for "unset, use the default"
// (`zero:"default"`): a source that writes that zero explicitly (learning_rate: 0) is an error,
// because the default would silently replace it.
const ZeroTag = "zero"

func load(path string, sets []string, out any, env map[string]string) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("conf.Load needs a pointer to a struct, got %T", out)
	}
	source := path
	if source == "" {
		source = "config"
	}
	keys := Keys(rv.Elem().Type())
	// origin names where each key's value came from, for error lines: the YAML file, the
	// environment variable, or the --set flag.
	origin := map[string]string{}
	v := viper.New()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading config: %w", err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: invalid YAML: %s", path, oneLine(err.Error()))
		}
		if err := v.MergeConfigMap(doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, k := range v.AllKeys() {
		if !known(keys, k) {
			return fmt.Errorf("%s: unknown key %q%s", source, k, suggest(keys, k))
		}
		origin[k] = source
	}
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if slices.Contains(Reserved(), name) && !known(keys, envKey(name)) {
			continue
		}
		key, ok := envToKey(keys, name)
		if !ok {
			return fmt.Errorf("environment %s: matches no config key%s", name, suggestEnv(keys, name))
		}
		val, err := scalar(env[name])
		if err != nil {
			return fmt.Errorf("environment %s: %v", name, err)
		}
		v.Set(key, val)
		origin[key] = "environment " + name
	}
	for _, s := range sets {
		key, value, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return fmt.Errorf("--set %q: want key=value", s)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if !known(keys, key) {
			return fmt.Errorf("--set %s: unknown key %q%s", key, key, suggest(keys, key))
		}
		val, err := scalar(value)
		if err != nil {
			return fmt.Errorf("--set %s: %v", key, err)
		}
		v.Set(key, val)
		origin[key] = "--set " + key
	}
	// A value from the environment or --set that does not decode is reported against its variable
	// or flag, not against the YAML file: each is decoded alone into a scratch struct first.
	for _, k := range sortedKeys(origin) {
		if origin[k] == source {
			continue
		}
		one := viper.New()
		one.Set(k, v.Get(k))
		scratch := reflect.New(rv.Elem().Type()).Interface()
		if err := decode(one.AllSettings(), scratch); err != nil {
			return fmt.Errorf("%s: %s", origin[k], decodeError(err))
		}
	}
	if err := decode(v.AllSettings(), out); err != nil {
		return fmt.Errorf("%s: %s", source, decodeError(err))
	}
	if err := explicitZeros(rv.Elem(), "", origin); err != nil {
		return err
	}
	if val, ok := out.(Validator); ok {
		if err := val.Validate(); err != nil {
			// "key: ..." from a key the environment or --set gave is reported against them.
			if k, _, ok := strings.Cut(err.Error(), ":"); ok && origin[k] != "" && origin[k] != source {
				return fmt.Errorf("%s: %w", origin[k], err)
			}
			return fmt.Errorf("%s: %w", source, err)
		}
	}
	return nil
}

func decode(settings map[string]any, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           out,
		TagName:          "mapstructure",
		WeaklyTypedInput: false,
		ErrorUnused:      true,
		DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		return err
	}
	return dec.Decode(settings)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// envKey is the key an environment variable would name if its underscores after the prefix were
// all part of one key name (used only to see whether a reserved variable is also a key).
func envKey(name string) string { return strings.ToLower(strings.TrimPrefix(name, EnvPrefix)) }

// envToKey finds the key an ALIGNKIT_ variable sets: a key whose EnvName it is, or a sub-key of a
// map key (ALIGNKIT_COLUMNS_PROMPT sets columns.prompt).
func envToKey(keys []Key, name string) (string, bool) {
	for _, k := range keys {
		if !k.Map && EnvName(k.Name) == name {
			return k.Name, true
		}
	}
	for _, k := range keys {
		if p := EnvName(k.Name) + "_"; k.Map && strings.HasPrefix(name, p) && len(name) > len(p) {
			return k.Name + "." + strings.ToLower(name[len(p):]), true
		}
	}
	return "", false
}

// suggestEnv names the closest variable a key would give, when a typo is likely.
func suggestEnv(keys []Key, name string) string {
	best, bestD := "", 4
	for _, key := range keys {
		if d := distance(EnvName(key.Name), name); d < bestD {
			best, bestD = EnvName(key.Name), d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// explicitZeros reports a field tagged `zero:"default"` that a source set to its zero value.
func explicitZeros(v reflect.Value, prefix string, origin map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "squash") || (f.Anonymous && name == "") {
			if fv.Kind() == reflect.Struct {
				if err := explicitZeros(fv, prefix, origin); err != nil {
					return err
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		full := prefix + strings.ToLower(name)
		if fv.Kind() == reflect.Struct {
			if err := explicitZeros(fv, full+".", origin); err != nil {
				return err
			}
			continue
		}
		if f.Tag.Get(ZeroTag) == "default" && origin[full] != "" && fv.IsZero() {
			return fmt.Errorf("%s: %s: %v is not a valid value (it would mean \"use the default\"; omit the key for that)", origin[full], full, zeroText(fv))
		}
	}
	return nil
}

func zeroText(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return `""`
	}
	return fmt.Sprint(v.Interface())
}

// Key is one config key: its dotted name, the Go type, and the field's `doc` tag.
type Key struct {
	Name string
	Type string
	Doc  string
	Map  bool // a map or free-form value: any sub-key is allowed
}

// Keys lists the keys a config struct accepts, in field order, following squashed embedded structs.
func Keys(t reflect.Type) []Key {
	var out []Key
	collect(t, "", &out)
	return out
}

func collect(t reflect.Type, prefix string, out *[]Key) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("mapstructure")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(opts, "squash") || (f.Anonymous && name == "") {
			collect(ft, prefix, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		full := prefix + strings.ToLower(name)
		switch ft.Kind() {
		case reflect.Struct:
			collect(ft, full+".", out)
		case reflect.Map, reflect.Interface:
			*out = append(*out, Key{Name: full, Type: typeName(ft), Doc: f.Tag.Get("doc"), Map: true})
		default:
			*out = append(*out, Key{Name: full, Type: typeName(ft), Doc: f.Tag.Get("doc")})
		}
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint64:
		return "integer"
	case reflect.Bool:
		return "bool"
	case reflect.String:
		return "string"
	case reflect.Interface:
		return "any"
	}
	return t.String()
}

// EnvName is the environment variable that overrides a key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func known(keys []Key, k string) bool {
	for _, key := range keys {
		if key.Name == k || (key.Map && strings.HasPrefix(k, key.Name+".")) {
			return true
		}
	}
	return false
}

// suggest names the closest known key when a typo is likely.
func suggest(keys []Key, k string) string {
	best, bestD := "", 4
	for _, key := range keys {
		if d := distance(key.Name, k); d < bestD {
			best, bestD = key.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// scalar parses a command-line or environment value as YAML, so "1e-5" is a number, "true" a bool,
// "[a, b]" a list, and anything else a string.
func scalar(s string) (any, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		// key= is an empty string, not "unset": a nil would let the YAML file's value through, an
		// explicit value silently replaced.
		return "", nil
	}
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("value %q: %s", s, oneLine(err.Error()))
	}
	if v == nil {
		if t == "null" || t == "~" {
			return nil, fmt.Errorf("value %q: null cannot replace a value; give the value, or key= for an empty string", s)
		}
		return s, nil
	}
	return v, nil
}

func decodeError(err error) string {
	var msgs []string
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			msgs = append(msgs, e.Error())
		}
	} else {
		for _, line := range strings.Split(err.Error(), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line != "" && !strings.Contains(line, "error(s) decoding") {
				msgs = append(msgs, line)
			}
		}
	}
	sort.Strings(msgs)
	for i, m := range msgs {
		m = oneLine(m)
		if g := typeErr.FindStringSubmatch(m); g != nil {
			m = fmt.Sprintf("key %q must be %s, got %s", g[1], g[2], g[3])
		}
		msgs[i] = m
	}
	return strings.Join(msgs, "; ")
}

// typeErr matches mapstructure's wording for a value of the wrong type.
var typeErr = regexp.MustCompile(`^'([^']*)' expected type '([^']*)', got unconvertible type '([^']*)'`)

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Reference renders a config struct's keys as a Markdown table (key, type, meaning), the generated
// config reference that README links to, so the documentation cannot drift from the code.
func Reference(t reflect.Type) string {
	var sb strings.Builder
	sb.WriteString("| key | type | meaning |\n|---|---|---|\n")
	for _, k := range Keys(t) {
		doc := strings.ReplaceAll(k.Doc, "|", `\|`)
		fmt.Fprintf(&sb, "| `%s` | %s | %s |\n", k.Name, k.Type, doc)
	}
	return sb.String()
}

// Values is a config struct's keys with their values, as Keys names them (dotted, squashed structs
// flattened); nil pointers and fields tagged "-" are left out, and so are secrets, tagged json:"-"
// (api_key: "never logged or saved"). Runs record it (run_config.json) so that what a run used
// can be read back without its YAML file.
func Values(v any) map[string]any {
	out := map[string]any{}
	values(reflect.ValueOf(v), "", out)
	return out
}

func values(v reflect.Value, prefix string, out map[string]any) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" || f.Tag.Get("json") == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "squash") || (f.Anonymous && name == "") {
			values(fv, prefix, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		full := prefix + strings.ToLower(name)
		for fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				break
			}
			fv = fv.Elem()
		}
		switch {
		case fv.Kind() == reflect.Pointer || (fv.Kind() == reflect.Interface && fv.IsNil()):
		case fv.Kind() == reflect.Struct:
			values(fv, full+".", out)
		default:
			out[full] = fv.Interface()
		}
	}
}
