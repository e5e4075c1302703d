package gguf

import (
	"fmt"
	"math"
	"strconv"
)

// String returns a string metadata value; ok is false when the key is absent.
func (f *File) String(key string) (s string, ok bool, err error) {
	v, ok := f.KV[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, fmt.Errorf("%s: %s is a %T, want a string", f.Path, key, v)
	}
	return s, true, nil
}

// Uint returns a non-negative integer metadata value of any integer type; ok is false when the key is
// absent. Files disagree on the integer width of counts, so every width is accepted.
func (f *File) Uint(key string) (n uint64, ok bool, err error) {
	v, ok := f.KV[key]
	if !ok {
		return 0, false, nil
	}
	n, err = toUint(v)
	if err != nil {
		return 0, true, fmt.Errorf("%s: %s: %w", f.Path, key, err)
	}
	return n, true, nil
}

// Float returns a float32 or float64 metadata value as float64; ok is false when the key is absent. A
// float32 is widened through its shortest decimal form, so the 1e-5 that a writer stored as float32 reads
// back as 1e-5, not 9.999999747378752e-06.
func (f *File) Float(key string) (x float64, ok bool, err error) {
	v, ok := f.KV[key]
	if !ok {
		return 0, false, nil
	}
	switch x := v.(type) {
	case float32:
		d, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return d, true, nil
	case float64:
		return x, true, nil
	}
	return 0, true, fmt.Errorf("%s: %s is a %T, want a float", f.Path, key, v)
}

func toUint(v any) (uint64, error) {
	var i int64
	switch x := v.(type) {
	case uint8:
		return uint64(x), nil
	case uint16:
		return uint64(x), nil
	case uint32:
		return uint64(x), nil
	case uint64:
		return x, nil
	case int8:
		i = int64(x)
	case int16:
		i = int64(x)
	case int32:
		i = int64(x)
	case int64:
		i = x
	default:
		return 0, fmt.Errorf("is a %T, want an integer", v)
	}
	if i < 0 {
		return 0, fmt.Errorf("is %d, want a non-negative integer", i)
	}
	return uint64(i), nil
}

// intArray widens an array of any integer type to int64.
func intArray(v any) ([]int64, error) {
	switch a := v.(type) {
	case []int8:
		return widen(a), nil
	case []uint8:
		return widen(a), nil
	case []int16:
		return widen(a), nil
	case []uint16:
		return widen(a), nil
	case []int32:
		return widen(a), nil
	case []uint32:
		return widen(a), nil
	case []int64:
		return a, nil
	case []uint64:
		for _, x := range a {
			if x > math.MaxInt64 {
				return nil, fmt.Errorf("value %d is out of range", x)
			}
		}
		return widen(a), nil
	}
	return nil, fmt.Errorf("is a %T, want an array of integers", v)
}

func widen[T int8 | uint8 | int16 | uint16 | int32 | uint32 | uint64](a []T) []int64 {
	out := make([]int64, len(a))
	for i, x := range a {
		out[i] = int64(x)
	}
	return out
}

// stringArray returns a []string metadata value; a missing key is an error only when required.
func (f *File) stringArray(key string, required bool) ([]string, error) {
	v, ok := f.KV[key]
	if !ok {
		if required {
			return nil, fmt.Errorf("%s: metadata key %s is missing", f.Path, key)
		}
		return nil, nil
	}
	s, isStrs := v.([]string)
	if !isStrs {
		return nil, fmt.Errorf("%s: %s is a %T, want an array of strings", f.Path, key, v)
	}
	return s, nil
}
