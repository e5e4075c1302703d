package data

import "github.com/alignkit/alignkit/data/chat"

// Message is one conversation turn {role, content}; roles are "system",
// "user" and "assistant".
type Message = chat.Message
