package checkpoint

import "github.com/alignkit/alignkit/model/hf"

func saveOpts() hf.SaveOptions { return hf.SaveOptions{} }
