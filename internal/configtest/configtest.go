// Package configtest checks the configuration contract every package of
// this module follows, so each package states its cases and one piece of
// code decides what the contract means:
//
//   - EnsureDefaults fills the zero fields that have defaults, never
//     validates, never overwrites a field already set, and calling it twice
//     changes nothing;
//   - a config holding only what has no default, after EnsureDefaults,
//     passes Validate;
//   - Validate reports every violation at once — one error per bad field,
//     joined into one error, each naming the field and its value, each
//     wrapping the package's one sentinel (node.ErrInvalidConfig, ...);
//   - Validate changes nothing in what it checks.
//
// It imports testing, so production code must never import it.
package configtest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Case describes one config type T to Check.
type Case[T any] struct {
	// Sentinel is what every violation must wrap.
	Sentinel error
	// EnsureDefaults and Validate are the type's methods, as functions so
	// value and pointer receivers fit alike.
	EnsureDefaults func(*T)
	Validate       func(*T) error

	// Required returns a new config with only the fields that have no
	// default set, validly: EnsureDefaults must turn it into one Validate
	// accepts. For a type without such fields it is the zero value.
	Required func() T
	// Set returns a new valid config with every field set, each defaulted
	// one to a value other than its default: EnsureDefaults must leave it
	// exactly as it is. Check also fails when a field (of T, or of a
	// struct T embeds or holds by value) is zero, so a field added later
	// without a case here is noticed; Unset lists the fields whose zero
	// value is the only one that fits (say, a nil pointer that Set cannot
	// fill without changing what it tests).
	Set   func() T
	Unset []string
	// Bad returns a new config with every field Validate checks invalid,
	// and Want lists one substring per violation it must report (the field
	// name and the bad value, as the message spells them), in any order.
	// Validate must report exactly len(Want) violations.
	Bad  func() T
	Want []string

	// Equal compares two configs; nil means reflect.DeepEqual. Types
	// holding funcs need their own (DeepEqual calls any two non-nil funcs
	// different).
	Equal func(a, b T) bool
}

// Check runs the contract's four checks on c as subtests.
func Check[T any](t *testing.T, c Case[T]) {
	t.Helper()
	equal := c.Equal
	if equal == nil {
		equal = func(a, b T) bool { return reflect.DeepEqual(a, b) }
	}

	t.Run("defaults validate", func(t *testing.T) {
		cfg := c.Required()
		c.EnsureDefaults(&cfg)
		if err := c.Validate(&cfg); err != nil {
			t.Fatalf("Validate after EnsureDefaults on the required fields only: %v\nconfig: %+v", err, cfg)
		}
	})

	t.Run("EnsureDefaults is idempotent and keeps set fields", func(t *testing.T) {
		cfg := c.Required()
		c.EnsureDefaults(&cfg)
		once := cfg // shallow, but defaults are values, not edits inside maps
		c.EnsureDefaults(&cfg)
		if !equal(once, cfg) {
			t.Errorf("a second EnsureDefaults changed the config:\nonce:  %+v\ntwice: %+v", once, cfg)
		}

		set := c.Set()
		if zero := zeroFields(reflect.ValueOf(set), "", c.Unset); len(zero) > 0 {
			t.Fatalf("test bug: Set leaves %s zero; set them or list them in Unset", strings.Join(zero, ", "))
		}
		if err := c.Validate(&set); err != nil {
			t.Fatalf("test bug: Set is not valid: %v", err)
		}
		c.EnsureDefaults(&set)
		if want := c.Set(); !equal(set, want) {
			t.Errorf("EnsureDefaults overwrote set fields:\nbefore: %+v\nafter:  %+v", want, set)
		}
	})

	t.Run("Validate reports every violation", func(t *testing.T) {
		bad := c.Bad()
		err := c.Validate(&bad)
		if err == nil {
			t.Fatalf("Validate accepted a config with every field bad: %+v", bad)
		}
		if !errors.Is(err, c.Sentinel) {
			t.Errorf("Validate's error does not wrap %v: %v", c.Sentinel, err)
		}
		got := Violations(err)
		for _, v := range got {
			if !errors.Is(v, c.Sentinel) {
				t.Errorf("violation %q does not wrap %v", v, c.Sentinel)
			}
		}
		if len(got) != len(c.Want) {
			t.Errorf("Validate reported %d violations, want %d:\n%v", len(got), len(c.Want), err)
		}
		for _, w := range c.Want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate's error lacks %q:\n%v", w, err)
			}
		}
	})

	t.Run("Validate does not mutate", func(t *testing.T) {
		for name, mk := range map[string]func() T{"bad": c.Bad, "set": c.Set} {
			cfg, want := mk(), mk()
			_ = c.Validate(&cfg)
			if !equal(cfg, want) {
				t.Errorf("Validate changed the %s config:\nbefore: %+v\nafter:  %+v", name, want, cfg)
			}
		}
		cfg := c.Required()
		_ = c.Validate(&cfg)
		if want := c.Required(); !equal(cfg, want) {
			t.Errorf("Validate changed a config without defaults (it must not fill them):\nbefore: %+v\nafter:  %+v", want, cfg)
		}
	})
}

// Violations flattens err into the single violations errors.Join joined,
// however deeply joins nest.
func Violations(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Violations(e)...)
		}
		return out
	}
	return []error{err}
}

// zeroFields lists the zero fields of v (a struct), descending into fields
// that are structs held by value, except those named in allowed.
func zeroFields(v reflect.Value, prefix string, allowed []string) []string {
	var zero []string
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		name := prefix + sf.Name
		if !sf.IsExported() || slices.Contains(allowed, name) {
			continue
		}
		if f.Kind() == reflect.Struct {
			zero = append(zero, zeroFields(f, name+".", allowed)...)
			continue
		}
		if f.IsZero() {
			zero = append(zero, name)
		}
	}
	return zero
}

// Funcs reports whether two func values are both nil or both the same
// function, for Case.Equal of types holding funcs.
func Funcs(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.IsNil() || vb.IsNil() {
		return va.IsNil() == vb.IsNil()
	}
	return va.Pointer() == vb.Pointer()
}
