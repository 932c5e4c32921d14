//! The JavaScript API: the `LdpClient` class. Errors become JavaScript `Error`s carrying
//! [`WebError`]'s message. The wrapper in `js/index.js` adds storage and sending.

use wasm_bindgen::prelude::*;

use crate::{BrowserRng, Client, WebError, describe_report};

fn js_error(error: &WebError) -> JsError {
    JsError::new(&error.to_string())
}

/// One protocol on this device (JavaScript: `new LdpClient(descriptor, state,
/// lifetimeEpsilon)`).
#[wasm_bindgen]
#[derive(Debug)]
pub struct LdpClient {
    client: Client,
    /// Read from the browser's crypto block by block; kept between reports so that most
    /// reports cost no call into JavaScript.
    rng: BrowserRng,
}

#[wasm_bindgen]
impl LdpClient {
    /// Loads a descriptor (TOML or JSON text) and the device's stored state for it (the
    /// JSON of an earlier `state()`, or `undefined` on first use), with the device's
    /// lifetime ε cap for the protocol.
    ///
    /// # Errors
    /// A JavaScript `Error` naming what is wrong (see [`Client::new`]).
    #[wasm_bindgen(constructor)]
    pub fn new(
        descriptor: &str,
        state: Option<String>,
        lifetime_epsilon: f64,
    ) -> Result<LdpClient, JsError> {
        let client = Client::new(descriptor, state.as_deref(), lifetime_epsilon)
            .map_err(|error| js_error(&error))?;
        let rng = BrowserRng::new().map_err(|error| js_error(&error))?;
        Ok(Self { client, rng })
    }

    /// The id of the protocol a descriptor describes (`sha256:…`), for a storage key.
    ///
    /// # Errors
    /// A JavaScript `Error` if the descriptor does not load.
    #[wasm_bindgen(js_name = protocolIdOf)]
    pub fn protocol_id_of(descriptor: &str) -> Result<String, JsError> {
        let parsed = crate::client::parse_descriptor(descriptor).map_err(|e| js_error(&e))?;
        veil_ldp::Protocol::from_descriptor(&parsed)
            .map(|protocol| protocol.id().to_string())
            .map_err(|error| js_error(&error.into()))
    }

    /// The protocol's id (`sha256:…`).
    #[wasm_bindgen(getter, js_name = protocolId)]
    pub fn protocol_id(&self) -> String {
        self.client.protocol().id().to_string()
    }

    /// The oracle's name (`grr`, `olh`, …).
    #[wasm_bindgen(getter)]
    pub fn oracle(&self) -> String {
        self.client.protocol().oracle().name().as_str().to_string()
    }

    /// ε per fresh report.
    #[wasm_bindgen(getter)]
    pub fn epsilon(&self) -> f64 {
        self.client.protocol().epsilon().get()
    }

    /// ε this device has spent under the protocol.
    #[wasm_bindgen(getter, js_name = spentEpsilon)]
    pub fn spent_epsilon(&self) -> f64 {
        self.client.spent_epsilon()
    }

    /// The device's lifetime cap for the protocol.
    #[wasm_bindgen(getter, js_name = lifetimeEpsilon)]
    pub fn lifetime_epsilon(&self) -> f64 {
        self.client.lifetime_epsilon()
    }

    /// The listed values of a categorical domain, in order (empty otherwise).
    #[wasm_bindgen(getter, js_name = domainValues)]
    pub fn domain_values(&self) -> Vec<String> {
        match self.client.protocol().domain() {
            veil_ldp::Domain::Values(values) => values.clone(),
            _ => Vec::new(),
        }
    }

    /// What reporting `value` costs now: 0 if its permanent answer is memoised, else ε.
    #[wasm_bindgen(js_name = costOfValue)]
    pub fn cost_of_value(&self, value: &str) -> f64 {
        self.client.cost_of_value(value)
    }

    /// Randomizes a category (or any string, for an open domain): the report's bytes.
    ///
    /// # Errors
    /// A JavaScript `Error`: a value outside the domain, the cap reached, no randomness.
    #[wasm_bindgen(js_name = randomizeValue)]
    pub fn randomize_value(&mut self, value: &str) -> Result<Vec<u8>, JsError> {
        self.client
            .randomize_value(value, &mut self.rng)
            .map_err(|e| js_error(&e))
    }

    /// Randomizes the value with index `index`: the report's bytes.
    ///
    /// # Errors
    /// As `randomizeValue`.
    #[wasm_bindgen(js_name = randomizeIndex)]
    pub fn randomize_index(&mut self, index: u32) -> Result<Vec<u8>, JsError> {
        self.client
            .randomize_index(index, &mut self.rng)
            .map_err(|e| js_error(&e))
    }

    /// Randomizes a number (numeric protocols): the report's bytes.
    ///
    /// # Errors
    /// As `randomizeValue`.
    #[wasm_bindgen(js_name = randomizeNumber)]
    pub fn randomize_number(&mut self, number: f64) -> Result<Vec<u8>, JsError> {
        self.client
            .randomize_number(number, &mut self.rng)
            .map_err(|e| js_error(&e))
    }

    /// The state to persist (JSON), before the report is sent.
    pub fn state(&self) -> String {
        self.client.state()
    }

    /// A report in words, for the person to see before it is sent.
    ///
    /// # Errors
    /// A JavaScript `Error` if the bytes are not a report of this protocol.
    #[wasm_bindgen(js_name = describeReport)]
    pub fn describe_report(&self, report: &[u8]) -> Result<String, JsError> {
        describe_report(self.client.protocol(), report).map_err(|e| js_error(&e))
    }
}
