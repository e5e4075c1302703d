// Package jinja is github.com/ardanlabs/jinja v1.8.0 (Apache-2.0, Copyright 2026 Ardan Labs; see
// LICENSE), forked to run templates from model files safely. The changes, all marked by comments
// where they are made:
//
//   - Limits (budget.go): every render counts call nesting, loop iterations, output bytes and the
//     size of strings and lists built by +, ~ and *, and checks a deadline; exceeding one returns a
//     *LimitError.
//   - The parser bounds the nesting of expressions and blocks (maxNesting), range() its length,
//     indent and tojson their indentation, so that nothing can overflow the stack or allocate
//     without bound before a limit is checked.
//   - replace and join refuse results over maxValueBytes before building them; list
//     concatenation is bounded by MaxIterations items.
//   - A panic inside a render becomes that render's error.
//   - "s" * n with n < 0 is "" as in Python, where it panicked.
package jinja
