//! The part of a Spin manifest (version 2) that `secure-context serve --manifest` runs: HTTP
//! routes, and for each component its source, mounted files and environment. What Spin would
//! provide and this runner cannot (variables, key-value stores, outbound hosts, dependencies)
//! is refused, so an app never runs here with less than its manifest asks for.

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Component keys this runner honours, or that only matter to `spin build`/`spin up` tooling.
const KNOWN_KEYS: &[&str] = &[
    "source",
    "files",
    "environment",
    "allowed_outbound_hosts",
    "build",
    "description",
    "exclude_files",
];

#[derive(Deserialize)]
struct Manifest {
    spin_manifest_version: u32,
    #[serde(default)]
    trigger: Triggers,
    #[serde(default)]
    component: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize, Default)]
struct Triggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

#[derive(Deserialize)]
struct HttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileMount {
    Same(String),
    Mapped { source: String, destination: String },
}

/// Which request paths a route takes, as Spin matches them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/a/b`: that path only.
    Exact(String),
    /// `/a/...`: `/a` and everything under it; `/...`: everything.
    Prefix(String),
}

impl Route {
    /// Exact paths and `/...` prefixes only. Spin also has named segments (`/users/:id`) and a
    /// trailing wildcard (`/files/*`); this runner does not emulate them, so it refuses them
    /// rather than take them as literal paths.
    pub fn parse(route: &str) -> Result<Route> {
        if !route.starts_with('/') {
            bail!("route {route:?} must start with /");
        }
        let body = route.strip_suffix("/...").unwrap_or(route);
        if let Some(seg) = body
            .split('/')
            .find(|s| s.starts_with(':') || *s == "*" || *s == "...")
        {
            bail!(
                "route {route:?}: segment {seg:?} is Spin route syntax this runner does not \
                 emulate (it serves exact paths and `/...` prefixes); run it under `spin up`"
            );
        }
        Ok(match route.strip_suffix("/...") {
            Some(prefix) => Route::Prefix(prefix.to_string()),
            None => Route::Exact(route.trim_end_matches('/').to_string()),
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            Route::Exact(p) => path.trim_end_matches('/') == p,
            Route::Prefix(p) => {
                path == p || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
            }
        }
    }

    /// Spin's precedence: exact routes first, then the longest prefix.
    fn rank(&self) -> (u8, usize) {
        match self {
            Route::Exact(p) => (0, usize::MAX - p.len()),
            Route::Prefix(p) => (1, usize::MAX - p.len()),
        }
    }
}

/// One component as the runner instantiates it.
#[derive(Clone, Debug)]
pub struct ComponentSpec {
    pub id: String,
    pub source: PathBuf,
    /// (host directory, guest path), mounted read-only.
    pub dirs: Vec<(PathBuf, String)>,
    pub envs: Vec<(String, String)>,
}

/// Routes in match order, each with the component it runs.
#[derive(Clone, Debug)]
pub struct App {
    pub routes: Vec<(Route, ComponentSpec)>,
}

impl App {
    pub fn load(path: &Path) -> Result<App> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        App::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a manifest; relative paths are taken from `base` (the manifest's directory).
    pub fn parse(text: &str, base: &Path) -> Result<App> {
        let m: Manifest = toml::from_str(text)?;
        if m.spin_manifest_version != 2 {
            bail!(
                "spin_manifest_version = {}: only 2 is supported",
                m.spin_manifest_version
            );
        }
        if m.trigger.http.is_empty() {
            bail!("no [[trigger.http]] routes");
        }
        let mut routes = Vec::new();
        for t in &m.trigger.http {
            let table = m.component.get(&t.component).with_context(|| {
                format!(
                    "route {:?} names component {:?}, which is not defined",
                    t.route, t.component
                )
            })?;
            let spec = component_spec(&t.component, table, base)
                .with_context(|| format!("[component.{}]", t.component))?;
            let route = Route::parse(&t.route)?;
            if routes.iter().any(|(r, _)| r == &route) {
                bail!("route {:?} is given twice", t.route);
            }
            routes.push((route, spec));
        }
        routes.sort_by_key(|(r, _)| r.rank());
        Ok(App { routes })
    }

    /// The component that serves `path`, if any route matches.
    pub fn route(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|(r, _)| r.matches(path))
    }
}

fn component_spec(id: &str, table: &toml::Table, base: &Path) -> Result<ComponentSpec> {
    if let Some(k) = table.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        bail!("`{k}` is a Spin feature this runner does not provide");
    }
    let source: String = field(table, "source")?.context("`source` is missing")?;
    let files: Vec<FileMount> = field(table, "files")?.unwrap_or_default();
    let environment: BTreeMap<String, String> = field(table, "environment")?.unwrap_or_default();
    let outbound: Vec<String> = field(table, "allowed_outbound_hosts")?.unwrap_or_default();
    if !outbound.is_empty() {
        bail!("allowed_outbound_hosts: this runner refuses all outbound connections");
    }
    let mut dirs = Vec::new();
    for f in files {
        let (src, dst) = match f {
            FileMount::Same(s) => (s.clone(), format!("/{}", s.trim_start_matches('/'))),
            FileMount::Mapped {
                source,
                destination,
            } => (source, destination),
        };
        let host = base.join(&src);
        if !host.is_dir() {
            bail!(
                "files: {} is not a directory (this runner mounts directories only)",
                host.display()
            );
        }
        dirs.push((host, dst));
    }
    Ok(ComponentSpec {
        id: id.to_string(),
        source: base.join(source),
        dirs,
        envs: environment.into_iter().collect(),
    })
}

fn field<T: serde::de::DeserializeOwned>(table: &toml::Table, key: &str) -> Result<Option<T>> {
    table
        .get(key)
        .map(|v| v.clone().try_into::<T>())
        .transpose()
        .with_context(|| format!("`{key}` is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(extra: &str) -> Result<App> {
        let dir = std::env::temp_dir().join(format!("sc-manifest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("www"))?;
        let text = format!(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.http]]
route = "/api/..."
component = "api"
[[trigger.http]]
route = "/api/health"
component = "web"
[component.web]
source = "web.wasm"
files = [{{ source = "www", destination = "/web" }}]
[component.web.environment]
A = "1"
[component.api]
source = "api.wasm"
{extra}
"#
        );
        App::parse(&text, &dir)
    }

    #[test]
    fn routes_match_as_spin_does() {
        let a = app("").unwrap();
        let id = |p: &str| a.route(p).map(|i| a.routes[i].1.id.clone());
        assert_eq!(id("/api/health").as_deref(), Some("web"));
        assert_eq!(id("/api/models").as_deref(), Some("api"));
        assert_eq!(id("/api").as_deref(), Some("api"));
        assert_eq!(id("/apis").as_deref(), Some("web"));
        assert_eq!(id("/").as_deref(), Some("web"));
        let web = &a.routes[a.route("/").unwrap()].1;
        assert_eq!(web.envs, vec![("A".to_string(), "1".to_string())]);
        assert_eq!(web.dirs[0].1, "/web");
    }

    #[test]
    fn refuses_what_it_cannot_provide() {
        for (extra, why) in [
            ("variables = { a = \"b\" }", "`variables`"),
            ("key_value_stores = [\"default\"]", "`key_value_stores`"),
            ("allowed_outbound_hosts = [\"https://x\"]", "outbound"),
            ("files = [\"missing\"]", "not a directory"),
        ] {
            let e = format!("{:#}", app(extra).unwrap_err());
            assert!(e.contains(why), "{extra}: {e}");
        }
        let e = format!(
            "{:#}",
            App::parse("spin_manifest_version = 1", Path::new(".")).unwrap_err()
        );
        assert!(e.contains("only 2"), "{e}");
    }

    #[test]
    fn refuses_route_syntax_it_does_not_emulate() {
        for r in ["/users/:id", "/files/*", "/a/:b/...", "/x/.../y"] {
            let e = format!("{:#}", Route::parse(r).unwrap_err());
            assert!(e.contains("does not emulate"), "{r}: {e}");
        }
        assert_eq!(Route::parse("/a/b/").unwrap(), Route::Exact("/a/b".into()));
        assert_eq!(Route::parse("/a/...").unwrap(), Route::Prefix("/a".into()));
        assert_eq!(Route::parse("/...").unwrap(), Route::Prefix(String::new()));
    }
}
