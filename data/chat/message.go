package chat

// Message is one turn of a conversation, in TRL's {role, content} shape.
type Message struct {
	Role    string
	Content string
}
