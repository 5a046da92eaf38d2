//! The route table the gateway writes to stdin: which plugin a call is for and its endpoints.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::HeaderMap;
use serde::Deserialize;

use crate::paths::MethodPath;

/// `apt.plugin.v1.Plugin/Describe` goes to the plugin named in `x-apt-plugin`.
const DESCRIBE: MethodPath<'static> = MethodPath { service: "apt.plugin.v1.Plugin", method: "Describe" };

/// What the gateway sends on stdin: the catalogue's service names and the routable plugins.
#[derive(Deserialize, Default)]
pub struct TableMsg {
    /// full proto service name -> plugin
    pub services: HashMap<String, String>,
    /// every plugin in the catalogue (services map by package name as a fallback)
    pub plugins: Vec<String>,
    /// plugin -> healthy endpoints; plugins absent here go to the control plane
    pub endpoints: HashMap<String, Vec<String>>,
    /// echoed in a `{"event": "table", "version": N}` line once the table is in use
    #[serde(default)]
    pub version: u64,
}

pub struct Route {
    endpoints: Vec<String>,
    /// set when a call to the endpoint broke: it gets no more calls until the next table
    down: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Route {
    fn new(endpoints: Vec<String>) -> Route {
        let down = endpoints.iter().map(|_| AtomicBool::new(false)).collect();
        Route { endpoints, down, next: AtomicUsize::new(0) }
    }

    /// The next endpoint round-robin, skipping those marked down; None when all are.
    pub fn pick(&self) -> Option<&str> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| !self.down[i].load(Ordering::Relaxed)).map(|i| &*self.endpoints[i])
    }

    pub fn mark_down(&self, endpoint: &str) {
        if let Some(i) = self.endpoints.iter().position(|e| e == endpoint) {
            self.down[i].store(true, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub struct Table {
    services: HashMap<String, String>,
    plugins: HashSet<String>,
    pub routes: HashMap<String, Route>,
}

impl Table {
    pub fn from_msg(msg: TableMsg) -> Table {
        let routes = msg
            .endpoints
            .into_iter()
            .filter(|(_, eps)| !eps.is_empty())
            .map(|(name, endpoints)| (name, Route::new(endpoints)))
            .collect();
        Table { services: msg.services, plugins: msg.plugins.into_iter().collect(), routes }
    }

    /// The plugin a call is for, as the gateway's own router decides it.
    pub fn plugin_for(&self, path: &MethodPath, headers: &HeaderMap) -> Option<String> {
        if *path == DESCRIBE {
            return headers.get("x-apt-plugin").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        if !path.is_plugin_service() {
            return None;
        }
        if let Some(p) = self.services.get(path.service) {
            return Some(p.clone());
        }
        // apt.plugins.<pkg>.v1.X: a service not listed in plugin.yaml still maps by package
        path.plugin_package().filter(|pkg| self.plugins.contains(pkg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn table() -> Table {
        Table::from_msg(TableMsg {
            services: HashMap::from([("apt.plugins.echo.v1.Echo".to_owned(), "echo".to_owned())]),
            plugins: vec!["echo".into(), "model-pruning".into()],
            endpoints: HashMap::from([
                ("echo".to_owned(), vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()]),
                ("model-pruning".to_owned(), vec![]),
            ]),
            version: 1,
        })
    }

    fn plugin_for(t: &Table, path: &str, headers: &HeaderMap) -> Option<String> {
        t.plugin_for(&MethodPath::parse(path).expect("a well-formed path"), headers)
    }

    #[test]
    fn services_map_to_plugins_as_the_gateway_maps_them() {
        let t = table();
        let none = HeaderMap::new();
        assert_eq!(plugin_for(&t, "/apt.plugins.echo.v1.Echo/Echo", &none).as_deref(), Some("echo"));
        // not listed in plugin.yaml: by package name, '_' -> '-'
        assert_eq!(plugin_for(&t, "/apt.plugins.model_pruning.v1.Pruning/StartPrune", &none).as_deref(),
                   Some("model-pruning"));
        assert_eq!(plugin_for(&t, "/apt.plugins.nope.v1.X/Y", &none), None);
        assert_eq!(plugin_for(&t, "/apt.plugins.x/Y", &none), None);
        assert_eq!(plugin_for(&t, "/apt.gateway.v1.Core/Info", &none), None);
        let mut h = HeaderMap::new();
        assert_eq!(plugin_for(&t, "/apt.plugin.v1.Plugin/Describe", &h), None);
        h.insert("x-apt-plugin", HeaderValue::from_static("echo"));
        assert_eq!(plugin_for(&t, "/apt.plugin.v1.Plugin/Describe", &h).as_deref(), Some("echo"));
        // a plugin without healthy endpoints has no route: its calls go to the control plane
        assert!(!t.routes.contains_key("model-pruning"));
    }

    #[test]
    fn round_robin_skips_endpoints_marked_down() {
        let t = table();
        let r = &t.routes["echo"];
        let picks: Vec<_> = (0..4).map(|_| r.pick().unwrap().to_owned()).collect();
        assert_eq!(picks, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]);
        r.mark_down("127.0.0.1:1");
        assert!((0..4).all(|_| r.pick() == Some("127.0.0.1:2")));
        r.mark_down("127.0.0.1:2");
        assert_eq!(r.pick(), None);
    }
}
