//! Our Poseidon, BabyJubJub, BLAKE-512 and EdDSA-Poseidon against vectors produced by
//! circomlibjs and @zk-kit/eddsa-poseidon (`vectors/generate.mjs`; regenerate and compare
//! with `npm run check` in `vectors/`).

use std::str::FromStr;

use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{BigInteger, PrimeField, Zero};
use blake_hash::Digest;
use num_bigint::BigUint;
use serde_json::Value;
use zkcredits_protocol::Fr;
use zkcredits_protocol::babyjubjub::{self, Point, Scalar};
use zkcredits_protocol::eddsa::{PrivateKey, PublicKey, Signature};
use zkcredits_protocol::poseidon;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/circomlib.json");
    let text = std::fs::read_to_string(path).expect("vectors/circomlib.json is committed");
    serde_json::from_str(&text).expect("valid JSON")
}

fn fe(v: &Value) -> Fr {
    Fr::from_str(v.as_str().expect("decimal string")).expect("field element")
}

fn point(v: &Value) -> Point {
    babyjubjub::from_coordinates(fe(&v[0]), fe(&v[1])).expect("vector point on curve")
}

fn biguint(v: &Value) -> BigUint {
    BigUint::from_str(v.as_str().expect("decimal")).expect("integer")
}

fn hash_dyn(inputs: &[Fr]) -> Fr {
    match inputs {
        [a] => poseidon::hash([*a]),
        [a, b] => poseidon::hash([*a, *b]),
        [a, b, c] => poseidon::hash([*a, *b, *c]),
        [a, b, c, d] => poseidon::hash([*a, *b, *c, *d]),
        [a, b, c, d, e] => poseidon::hash([*a, *b, *c, *d, *e]),
        [a, b, c, d, e, f] => poseidon::hash([*a, *b, *c, *d, *e, *f]),
        _ => panic!("arity {} not in the vectors", inputs.len()),
    }
}

#[test]
fn poseidon_matches_circomlibjs_for_arities_one_to_six() {
    let v = vectors();
    let cases = v["poseidon"].as_array().expect("list");
    assert!(cases.len() >= 30);
    for case in cases {
        let inputs: Vec<Fr> = case["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(fe)
            .collect();
        assert_eq!(hash_dyn(&inputs), fe(&case["output"]), "inputs {inputs:?}");
    }
}

#[test]
fn babyjubjub_parameters_base_point_and_arithmetic_match_circomlibjs() {
    let v = vectors();
    let b = &v["babyjub"];
    assert_eq!(fe(&b["a"]), babyjubjub::COEFF_A);
    assert_eq!(fe(&b["d"]), babyjubjub::COEFF_D);
    assert_eq!(
        biguint(&b["sub_order"]),
        BigUint::from_bytes_le(&Scalar::MODULUS.to_bytes_le())
    );
    assert_eq!(point(&b["base8"]), babyjubjub::base8());
    let generator = point(&b["generator"]);
    assert_eq!(
        (generator.into_group() * Scalar::from(8u64)).into_affine(),
        babyjubjub::base8()
    );
    for case in b["add"].as_array().expect("add") {
        let sum = (point(&case["p"]).into_group() + point(&case["q"])).into_affine();
        assert_eq!(sum, point(&case["sum"]));
    }
    for case in b["mul"].as_array().expect("mul") {
        let scalar = biguint(&case["scalar"]);
        let bigint = <Fr as PrimeField>::BigInt::try_from(scalar).expect("fits 256 bits");
        assert_eq!(
            babyjubjub::mul_integer(&babyjubjub::base8(), bigint),
            point(&case["point"]),
            "scalar {}",
            case["scalar"]
        );
    }
    for case in b["pack"].as_array().expect("pack") {
        let p = point(&case["point"]);
        let packed: [u8; 32] = hex::decode(case["packed_hex"].as_str().expect("hex"))
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        assert_eq!(babyjubjub::pack(&p), packed);
        // circomlibjs cannot unpack points with x = 0; compare the rest.
        if !p.x.is_zero() {
            assert_eq!(babyjubjub::unpack(&packed), Ok(p));
        }
    }
}

#[test]
fn blake512_matches_the_blake_hash_package() {
    let v = vectors();
    for case in v["blake512"].as_array().expect("list") {
        let input = hex::decode(case["input_hex"].as_str().expect("hex")).expect("hex");
        let digest = blake_hash::Blake512::digest(&input);
        assert_eq!(
            hex::encode(digest),
            case["digest_hex"].as_str().expect("hex")
        );
    }
}

#[test]
fn eddsa_poseidon_keys_and_signatures_match_circomlibjs_and_zk_kit() {
    let v = vectors();
    assert_eq!(v["zk_kit_agrees"], Value::Bool(true));
    let keys = v["eddsa"].as_array().expect("list");
    assert!(keys.len() >= 8);
    for key in keys {
        let bytes: [u8; 32] = hex::decode(key["private_key_hex"].as_str().expect("hex"))
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let private = PrivateKey::from_bytes(bytes);
        let public = private.public_key();
        assert_eq!(public.point(), point(&key["public_key"]));
        let packed = hex::encode(public.to_bytes());
        assert_eq!(packed, key["packed_public_key_hex"].as_str().expect("hex"));
        for m in key["messages"].as_array().expect("messages") {
            let msg = fe(&m["msg"]);
            let sig = private.sign(msg);
            assert_eq!(sig.r8, point(&m["signature"]["r8"]));
            let s = biguint(&m["signature"]["s"]);
            assert_eq!(
                BigUint::from_bytes_le(&sig.s.into_bigint().to_bytes_le()),
                s
            );
            assert_eq!(
                hex::encode(sig.to_bytes()),
                m["packed_signature_hex"].as_str().expect("hex")
            );
            assert!(public.verify(msg, &sig));
        }
    }
}

#[test]
fn signatures_circomlibjs_rejects_are_rejected_here_too() {
    let v = vectors();
    for case in v["eddsa_invalid"].as_array().expect("list") {
        let public =
            PublicKey::from_coordinates(fe(&case["public_key"][0]), fe(&case["public_key"][1]))
                .expect("vector keys are subgroup points");
        let s = biguint(&case["signature"]["s"]);
        let reason = case["reason"].as_str().expect("reason");
        let sub_order = BigUint::from_bytes_le(&Scalar::MODULUS.to_bytes_le());
        if s >= sub_order {
            // Not representable as a reduced scalar: the decoder refuses the bytes.
            let mut packed = [0u8; 64];
            packed[..32].copy_from_slice(&babyjubjub::pack(&point(&case["signature"]["r8"])));
            let s_bytes = s.to_bytes_le();
            packed[32..32 + s_bytes.len()].copy_from_slice(&s_bytes);
            assert!(Signature::from_bytes(&packed).is_err(), "{reason}");
            continue;
        }
        let sig = Signature {
            r8: point(&case["signature"]["r8"]),
            s: Scalar::from_le_bytes_mod_order(&s.to_bytes_le()),
        };
        assert!(!public.verify(fe(&case["msg"]), &sig), "{reason}");
    }
}
