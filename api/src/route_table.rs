//! The documented routes (the OpenAPI document's paths and methods): what metric labels and
//! 405's `Allow` come from.

/// The OpenAPI 3.1 description of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// One documented route: its path template and its methods (upper case).
pub struct Route {
    pub template: String,
    segments: Vec<Option<String>>,
    pub methods: Vec<String>,
}

impl Route {
    /// Whether `path` fits the template (`{name}` matches any one segment).
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        parts.len() == self.segments.len()
            && self
                .segments
                .iter()
                .zip(&parts)
                .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
    }
}

/// Every route of the OpenAPI document, literal templates first (so `/v1/policies/current`
/// wins over `/v1/policies/{id}`): what metric labels and 405's `Allow` come from.
pub fn routes() -> &'static [Route] {
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let mut routes: Vec<Route> = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(template, item)| Route {
                        template: template.clone(),
                        segments: template
                            .trim_start_matches('/')
                            .split('/')
                            .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                            .collect(),
                        methods: item
                            .as_object()
                            .map(|m| {
                                m.keys()
                                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                                    .map(|k| k.to_ascii_uppercase())
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        routes.sort_by_key(|r| r.segments.iter().filter(|s| s.is_none()).count());
        routes
    })
}
