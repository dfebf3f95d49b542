//! Choosing the Cinder endpoint from a token's service catalog, the way
//! keystoneauth and os-service-types do (see docs/OPENSTACK-API.md §2).

use serde::Deserialize;

/// Service types of block storage, in order of preference: the official
/// type first, then the aliases clouds still register.
const BLOCK_STORAGE_TYPES: [&str; 5] = [
    "block-storage",
    "volumev3",
    "volumev2",
    "volume",
    "block-store",
];

/// One catalog entry of a Keystone token.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    /// Service type (`volumev3`, `identity`, ...).
    #[serde(rename = "type")]
    pub service_type: String,
    /// The service's endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a catalog entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Region id (newer Keystone).
    pub region_id: Option<String>,
    /// Region name (older Keystone).
    pub region: Option<String>,
    /// The endpoint's URL.
    #[serde(default)]
    pub url: String,
}

/// The block-storage endpoint for `interface` (and `region`, when given), or
/// `None`. Legacy interface spellings (`publicURL`) are accepted.
pub fn block_storage_endpoint(
    catalog: &[CatalogEntry],
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    let wanted = interface.trim_end_matches("URL");
    for service_type in BLOCK_STORAGE_TYPES {
        let found = catalog
            .iter()
            .filter(|entry| entry.service_type == service_type)
            .flat_map(|entry| entry.endpoints.iter())
            .filter(|e| e.interface.trim_end_matches("URL") == wanted)
            .filter(|e| {
                region.is_none_or(|r| e.region_id.as_deref().or(e.region.as_deref()) == Some(r))
            })
            .find(|e| !e.url.is_empty());
        if let Some(endpoint) = found {
            return Some(endpoint.url.trim_end_matches('/').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service_type: &str, endpoints: &[(&str, &str, &str)]) -> CatalogEntry {
        CatalogEntry {
            service_type: service_type.into(),
            endpoints: endpoints
                .iter()
                .map(|(interface, region, url)| Endpoint {
                    interface: (*interface).into(),
                    region_id: Some((*region).into()),
                    region: Some((*region).into()),
                    url: (*url).into(),
                })
                .collect(),
        }
    }

    #[test]
    fn prefers_block_storage_then_aliases_and_honours_interface_and_region() {
        let catalog = vec![
            entry("identity", &[("public", "R1", "http://k/v3")]),
            entry(
                "volumev3",
                &[
                    ("public", "R1", "http://v3-r1/"),
                    ("internal", "R1", "http://v3-int"),
                    ("public", "R2", "http://v3-r2"),
                ],
            ),
            entry("block-storage", &[("public", "R2", "http://bs-r2")]),
        ];
        assert_eq!(
            block_storage_endpoint(&catalog, "public", None).as_deref(),
            Some("http://bs-r2")
        );
        assert_eq!(
            block_storage_endpoint(&catalog, "public", Some("R1")).as_deref(),
            Some("http://v3-r1")
        );
        assert_eq!(
            block_storage_endpoint(&catalog, "internalURL", Some("R1")).as_deref(),
            Some("http://v3-int")
        );
        assert_eq!(block_storage_endpoint(&catalog, "admin", None), None);
        assert_eq!(block_storage_endpoint(&catalog, "public", Some("R3")), None);
    }
}
