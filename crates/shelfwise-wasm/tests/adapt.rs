//! Issue #19's parity: the shop state (taxonomy, examples, a correction) built in wasm (Node)
//! scores as natively: the committed fixture that shelfwise-model's tests/shop.rs checks
//! natively, within 1e-4 on probabilities, similar-title cosines and word contributions.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::wasm_bindgen_test;

#[path = "../../shelfwise-model/tests/common/shop_parity.rs"]
mod shop_parity;

const SHIPPED: &[u8] = include_bytes!("../../../models/flipkart-minilm/model.shelfwise");
const FIXTURE: &str = include_str!("../../../tests/fixtures/shop_parity.json");

#[wasm_bindgen_test]
fn the_shop_state_scores_in_wasm_as_natively() {
    let want: shop_parity::Case = serde_json::from_str(FIXTURE).unwrap();
    let got = shop_parity::run(SHIPPED, &want);
    let diff = shop_parity::differences(&got, &want, 1e-4);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}
