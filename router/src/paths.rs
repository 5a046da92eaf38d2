//! gRPC method paths. A call's `:path` is `/<package>.<Service>/<Method>` (gRPC over HTTP/2);
//! anything else is answered UNIMPLEMENTED by the router itself and never forwarded.

const PLUGINS_PACKAGE: &str = "apt.plugins.";

/// A well-formed method path, split into the full service name and the method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodPath<'a> {
    /// full proto name, e.g. `apt.plugins.echo.v1.Echo`
    pub service: &'a str,
    /// e.g. `Echo`
    pub method: &'a str,
}

impl<'a> MethodPath<'a> {
    /// None unless `path` is `/` + dot-separated proto identifiers + `/` + one identifier.
    pub fn parse(path: &'a str) -> Option<MethodPath<'a>> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        (service.split('.').all(is_identifier) && is_identifier(method)).then_some(MethodPath { service, method })
    }

    /// The plugin a service under `apt.plugins.<pkg>.` belongs to by its package name, the way
    /// the gateway names plugins (`model_pruning` -> `model-pruning`); None for other services.
    pub fn plugin_package(&self) -> Option<String> {
        let rest = self.service.strip_prefix(PLUGINS_PACKAGE)?;
        let pkg = rest.split('.').next().filter(|p| !p.is_empty())?;
        Some(pkg.replace('_', "-"))
    }

    /// A service in the plugins' namespace (routed to a plugin when the table knows it).
    pub fn is_plugin_service(&self) -> bool {
        self.service.starts_with(PLUGINS_PACKAGE)
    }
}

/// A proto identifier: an ASCII letter or '_', then letters, digits and '_'.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_split_into_service_and_method() {
        let p = MethodPath::parse("/apt.plugins.echo.v1.Echo/Echo").unwrap();
        assert_eq!((p.service, p.method), ("apt.plugins.echo.v1.Echo", "Echo"));
        assert_eq!(p.plugin_package().as_deref(), Some("echo"));
        let p = MethodPath::parse("/apt.plugins.model_pruning.v1.Pruning/StartPrune").unwrap();
        assert_eq!(p.plugin_package().as_deref(), Some("model-pruning"));
        let p = MethodPath::parse("/grpc.health.v1.Health/Check").unwrap();
        assert!(!p.is_plugin_service() && p.plugin_package().is_none());
        // a service without a package is legal proto
        assert!(MethodPath::parse("/Greeter/SayHello").is_some());
        assert!(MethodPath::parse("/_x.y_1/_m2").is_some());
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for bad in [
            "", "/", "//", "/apt.plugins.x", "/apt.plugins.", "/apt.plugins./M", "/apt.plugins.x/",
            "/apt.plugins.x//M", "/a.b/M/extra", "apt.x.S/M", "/.S/M", "/S./M", "/a..b/M", "/S/1M",
            "/1a.S/M", "/S/M?x=1", "/a-b.S/M", "/S/M ", "/S /M", "/é.S/M", "/S/Mé", "/S/%4D", "/S\0/M",
        ] {
            assert_eq!(MethodPath::parse(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn plugin_package_needs_a_package_name() {
        // parse() already refuses an empty package; the namespace alone is not a plugin
        let p = MethodPath { service: "apt.plugins.", method: "M" };
        assert_eq!(p.plugin_package(), None);
        let p = MethodPath::parse("/apt.plugins.x/M").unwrap();
        assert_eq!(p.plugin_package().as_deref(), Some("x"));
    }
}
