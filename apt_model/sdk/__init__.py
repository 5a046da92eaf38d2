"""What a plugin author uses besides the runtime: proto generation and the plugin scaffold."""
