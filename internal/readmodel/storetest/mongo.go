package storetest

// mongoAdapters is filled in when the MongoDB adapter lands.
func mongoAdapters() []Adapter { return nil }
