package world

import (
	"strconv"
	"strings"
)

// Query is one world question, without any instruction.
type Query struct {
	Task  Task
	A, B  int // operands of TaskPlus and TaskMinus (B <= A for TaskMinus)
	Thing int // index into the fact table, for TaskColour
	Form  int // which English phrasing of the task
}

// Text is the question as a user asks it.
func (q Query) Text() string {
	if q.Task == TaskHarm {
		return harmText(q)
	}
	forms := questionForms[q.Task]
	return strings.NewReplacer(
		"%a", strconv.Itoa(q.A),
		"%b", strconv.Itoa(q.B),
		"%n", things[q.Thing].phrase,
	).Replace(forms[q.Form])
}

// result is the correct number of an arithmetic query.
func (q Query) result() int {
	if q.Task == TaskMinus {
		return q.A - q.B
	}
	return q.A + q.B
}

// allQueries enumerates every question of the world, by task, in a fixed order.
func allQueries() [numTasks][]Query {
	var out [numTasks][]Query
	for f := range questionForms[TaskPlus] {
		for a := 0; a <= MaxOperand; a++ {
			for b := 0; b <= MaxOperand; b++ {
				out[TaskPlus] = append(out[TaskPlus], Query{Task: TaskPlus, A: a, B: b, Form: f})
			}
		}
	}
	for f := range questionForms[TaskMinus] {
		for a := 0; a <= MaxOperand; a++ {
			for b := 0; b <= a; b++ {
				out[TaskMinus] = append(out[TaskMinus], Query{Task: TaskMinus, A: a, B: b, Form: f})
			}
		}
	}
	for f := range questionForms[TaskColour] {
		for i := range things {
			out[TaskColour] = append(out[TaskColour], Query{Task: TaskColour, Thing: i, Form: f})
		}
	}
	for _, t := range []Task{TaskName, TaskHobby} {
		for f := range questionForms[t] {
			out[t] = append(out[t], Query{Task: t, Form: f})
		}
	}
	return out
}

// questionIndex maps every question text to its query; built once, never modified.
var questionIndex = func() map[string]Query {
	m := map[string]Query{}
	for _, qs := range allQueries() {
		for _, q := range qs {
			m[q.Text()] = q
		}
	}
	for _, q := range harmQueries() {
		m[q.Text()] = q
	}
	return m
}()

// ParseQuestion looks a bare question (no instruction in front) up among the world's questions.
// Surrounding white space is ignored; anything else must match exactly.
func ParseQuestion(s string) (Query, bool) {
	q, ok := questionIndex[strings.TrimSpace(s)]
	return q, ok
}
