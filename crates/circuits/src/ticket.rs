//! Per-ticket precomputation: a request proof finished in four scalar multiplications
//! once the request is known (`docs/PROTOCOL.md §4`, "Finishing a precomputed ticket").
//!
//! The request enters the request circuit only through the public `x`, and only in the
//! share constraint `a * x = y - k`. For one ticket (note, root, state, `rho_next`) and
//! one blinding `(r, s)`, every value of the assignment except `x` and `y = k + a x` is
//! fixed, so the proof is a polynomial in `x`:
//!
//! - `A = A0 + x A1` and `B = B0 + x B1` (in G2, and in G1 inside `C`);
//! - the quotient `h` is quadratic in `x`: `h = h0 + x h1 + x^2 h2`;
//! - `C = C0 + x C1 + x^2 C2`.
//!
//! [`RequestProver::precompute_ticket`] computes these seven points from three
//! quotients (at `x = 0, 1, -1`) and the prover's own arithmetic at `x = 0`, and
//! [`RequestProver::finish_ticket`] evaluates them at the request's `x`. The finished
//! proof is the very proof the plain prover makes for that `x` with that `(r, s)`
//! (the tests compare them byte for byte): an ordinary, fully blinded Groth16 proof.
//!
//! **One blinding, one proof.** A [`TicketPrecomputation`] is consumed by the proof it
//! finishes, and it zeroizes its points when dropped. Its points are as secret as the
//! note key: two evaluations at different `x` are two proofs with the same blinding,
//! and their shares `y` reveal `k` anyway (they are one ticket spent twice).

use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{CurveGroup, VariableBaseMSM};
use ark_ff::{Field, One, PrimeField, Zero};
use ark_groth16::Proof;
use ark_relations::utils::matrix::Matrix;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_std::rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::CircuitError;
use crate::precompute::{Blinding, NotePrecomputation, to_bigints};
use crate::prover::{RequestProver, row_value};
use crate::request::{RequestCircuit, RequestInputs, RequestPublicInputs};

/// Full-assignment index of `x`: after the constant 1 and `root`
/// ([`RequestPublicInputs::to_field_elements`] fixes the order).
const X: usize = 2;
/// Full-assignment index of `y`.
const Y: usize = 3;

/// A ticket's proof, precomputed up to the request binding `x`, for one blinding.
///
/// As secret as the note key: keep it in memory or, through
/// [`TicketPrecomputation::to_bytes`], in the encrypted cache only.
///
/// **Used once.** [`RequestProver::finish_ticket`] takes it by value, so in memory it
/// finishes one proof. Bytes can be copied, so the cache must not hand out the same
/// bytes twice: the client deletes a ticket's cache entry when it journals the ticket
/// for a request (before the request leaves), and never finishes a ticket it has
/// journaled with another `x`. Finished twice with the same `x`, the bytes give the
/// byte-identical proof again (harmless: the gateway answers it as a replay); with
/// another `x`, they are the same ticket spent twice, which the gateway punishes by
/// recovering `k` from the two shares, and which the two proofs' shared blinding would
/// link besides.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TicketPrecomputation {
    /// `A0, A1`.
    a: [G1Affine; 2],
    /// `B0, B1` in G2.
    b: [G2Affine; 2],
    /// `C0, C1, C2`.
    c: [G1Affine; 3],
    /// What this was made for: see [`RequestProver::precompute_ticket`].
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for TicketPrecomputation {
    // The points are secret: only say what the precomputation is for.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketPrecomputation")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// A request proof finished from a ticket precomputation, with its public inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketProof {
    /// The proof.
    pub proof: Proof<Bn254>,
    /// Its public inputs (with `x` and `y = k + a x` of this request).
    pub public: RequestPublicInputs,
}

/// The first byte of [`TicketPrecomputation::to_bytes`].
const FORMAT_VERSION: u8 = 1;

impl TicketPrecomputation {
    /// The length of [`TicketPrecomputation::to_bytes`]: a version byte, five
    /// uncompressed G1 points, two uncompressed G2 points and the fingerprint.
    pub const ENCODED_LEN: usize = 1 + 5 * 64 + 2 * 128 + 32;

    /// What this precomputation was made for: SHA-256 of the verifying key and of the
    /// public inputs other than `x, y` (`root, N, T_next, C_max, P_max, A`), which fix
    /// the note, the ticket, the state and `rho_next`. They are all public once the
    /// request is sent, so the fingerprint reveals nothing a request does not.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Encodes the precomputation for the encrypted cache. The bytes are as secret as
    /// the note key (and wiped when dropped): encrypt them, and see the type's
    /// documentation for when to delete them.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::ENCODED_LEN));
        out.push(FORMAT_VERSION);
        // Serialising into a Vec cannot fail.
        for p in [&self.a[0], &self.a[1], &self.c[0], &self.c[1], &self.c[2]] {
            p.serialize_uncompressed(&mut *out)
                .expect("writing to a Vec");
        }
        for p in &self.b {
            p.serialize_uncompressed(&mut *out)
                .expect("writing to a Vec");
        }
        out.extend_from_slice(&self.fingerprint);
        out
    }

    /// Decodes [`TicketPrecomputation::to_bytes`], checking that every point is on its
    /// curve and in its subgroup. Whether it fits the ticket, state, root and key is
    /// checked when it is finished ([`RequestProver::finish_ticket`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CircuitError> {
        let bad = |what: &str| CircuitError::KeyFile {
            path: "ticket precomputation".into(),
            reason: format!("{what} does not decode"),
        };
        if bytes.len() != Self::ENCODED_LEN {
            return Err(bad("length"));
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(bad("version"));
        }
        let g1 = |i: usize| {
            let at = 1 + 64 * i;
            G1Affine::deserialize_with_mode(&bytes[at..at + 64], Compress::No, Validate::Yes)
                .map_err(|_| bad("a G1 point"))
        };
        let g2 = |i: usize| {
            let at = 1 + 5 * 64 + 128 * i;
            G2Affine::deserialize_with_mode(&bytes[at..at + 128], Compress::No, Validate::Yes)
                .map_err(|_| bad("a G2 point"))
        };
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&bytes[Self::ENCODED_LEN - 32..]);
        Ok(Self {
            a: [g1(0)?, g1(1)?],
            c: [g1(2)?, g1(3)?, g1(4)?],
            b: [g2(0)?, g2(1)?],
            fingerprint,
        })
    }

    /// Evaluates the proof at `x` with no check of what the precomputation was made
    /// for: tests use it to show that a precomputation for another ticket gives a proof
    /// that does not verify; everything else goes through
    /// [`RequestProver::finish_ticket`].
    #[doc(hidden)]
    pub fn finish_unchecked(self, x: Fr) -> Proof<Bn254> {
        // Four scalar multiplications (C by Horner's rule); `self` is wiped on return.
        let a = self.a[1] * x + self.a[0];
        let b = self.b[1] * x + self.b[0];
        let c = (self.c[2] * x + self.c[1]) * x + self.c[0];
        let [a, c] = <[G1Affine; 2]>::try_from(G1Projective::normalize_batch(&[a, c]))
            .expect("two points in, two out");
        Proof {
            a,
            b: b.into_affine(),
            c,
        }
    }
}

/// Where `x` and `y` enter the R1CS: the one row that holds them, with `x` in `B` only
/// and `y` in `C` only.
struct ShareRow {
    row: usize,
    /// `x`'s coefficient in the row's `B`.
    b_x: Fr,
    /// `y`'s coefficient in the row's `C`.
    c_y: Fr,
}

/// The sum of the coefficients of variable `index` in `row`.
fn coefficient(row: &[(Fr, usize)], index: usize) -> Option<Fr> {
    row.iter()
        .filter(|(_, i)| *i == index)
        .map(|(c, _)| *c)
        .reduce(|a, b| a + b)
}

/// Checks from the matrices that `x` and `y` appear in one constraint only, of the form
/// `<A, z> * (b_x x + <B', z>) = c_y y + <C', z>` with `A, B', C'` free of `x` and `y`.
/// Then for every `x`, moving `y` by `<A, z> b_x / c_y` per unit of `x` keeps every
/// constraint satisfied: the condition under which the assignment is affine in `x`.
fn share_row(matrices: &[Matrix<Fr>]) -> Result<ShareRow, CircuitError> {
    let [a, b, c] = matrices else {
        return Err(CircuitError::TicketShape("not an R1CS".into()));
    };
    let touches = |row: &[(Fr, usize)]| row.iter().any(|(_, i)| *i == X || *i == Y);
    let mut rows = (0..a.len()).filter(|&r| touches(&a[r]) || touches(&b[r]) || touches(&c[r]));
    let (Some(row), None) = (rows.next(), rows.next()) else {
        return Err(CircuitError::TicketShape(
            "x and y must appear in exactly one constraint".into(),
        ));
    };
    let nonzero = |c: Option<Fr>| c.filter(|c| !c.is_zero());
    let b_x = nonzero(coefficient(&b[row], X));
    let c_y = nonzero(coefficient(&c[row], Y));
    match (b_x, c_y) {
        (Some(b_x), Some(c_y))
            if !touches(&a[row])
                && coefficient(&b[row], Y).is_none()
                && coefficient(&c[row], X).is_none() =>
        {
            Ok(ShareRow { row, b_x, c_y })
        }
        _ => Err(CircuitError::TicketShape(
            "the share constraint must be a * (x) = (y - k), x in B and y in C only".into(),
        )),
    }
}

impl RequestProver {
    /// Precomputes the proof of the ticket of `circuit` (its note, root, state and
    /// `rho_next`) for every request binding `x`, with fresh blinding `(r, s)` from
    /// `rng`. The `x` that `circuit` was built with does not matter. Uses the note's
    /// precomputation `note`, and refuses one made for another note, root or key.
    ///
    /// About the cost of three quotients and seven MSMs (the prover's five with the
    /// note precomputed, two more over the `h` query); run it in the background as soon
    /// as the previous receipt has arrived.
    pub fn precompute_ticket<R: RngCore + CryptoRng>(
        &self,
        note: &NotePrecomputation,
        circuit: RequestCircuit,
        rng: &mut R,
    ) -> Result<TicketPrecomputation, CircuitError> {
        self.precompute_ticket_blinded(note, circuit, Blinding::draw(rng))
    }

    fn precompute_ticket_blinded(
        &self,
        note: &NotePrecomputation,
        circuit: RequestCircuit,
        blinding: Blinding,
    ) -> Result<TicketPrecomputation, CircuitError> {
        let core = self.core();
        let fingerprint = self.ticket_fingerprint(&circuit.public);
        let (x_c, y_c) = (circuit.public.x, circuit.public.y);
        let share = share_row(self.matrices())?;
        let mut z0 = Zeroizing::new(self.assignment(circuit)?);
        if note.fingerprint() != core.note_fingerprint(&z0) {
            return Err(CircuitError::StalePrecomputation);
        }
        if z0[X] != x_c || z0[Y] != y_c {
            return Err(CircuitError::TicketShape(
                "x and y are not where the public inputs put them".into(),
            ));
        }
        // `a = dy/dx`, the ticket's slope: `<A, z>` of the share row does not involve
        // `x` or `y` (checked above), so it is the same at every `x`.
        let mut slope = row_value(&self.matrices()[0][share.row], &z0) * share.b_x / share.c_y;
        // The assignment at x = 0, and at x = 1 and x = -1.
        z0[X] = Fr::zero();
        z0[Y] = y_c - x_c * slope;
        let mut plus = z0.clone();
        plus[X] = Fr::one();
        plus[Y] += slope;
        let mut minus = z0.clone();
        minus[X] = -Fr::one();
        minus[Y] -= slope;

        // The quotient is a quadratic function of the assignment (one product of two
        // linear maps, minus a linear map), so with the assignment affine in x it is
        // exactly h0 + x h1 + x^2 h2, coefficient by coefficient; three evaluations
        // give the three vectors.
        let (h0, (hp, hm)) = rayon::join(
            || core.quotient(&z0),
            || rayon::join(|| core.quotient(&plus), || core.quotient(&minus)),
        );
        let (h0, hp, hm) = (
            Zeroizing::new(h0?),
            Zeroizing::new(hp?),
            Zeroizing::new(hm?),
        );
        let half = Fr::from(2u64).inverse().expect("2 is invertible");
        let h1 = Zeroizing::new(
            hp.iter()
                .zip(hm.iter())
                .map(|(p, m)| ((*p - m) * half).into_bigint())
                .collect::<Vec<_>>(),
        );
        let h2 = Zeroizing::new(
            hp.iter()
                .zip(hm.iter())
                .zip(h0.iter())
                .map(|((p, m), o)| ((*p + m) * half - o).into_bigint())
                .collect::<Vec<_>>(),
        );
        let h0 = Zeroizing::new(to_bigints(&h0));

        let Blinding { r, s } = &blinding;
        let pk = self.proving_key();
        // At x = 0 the prover's own arithmetic gives A0, B0 and C0; the h query's share
        // of C1 and C2 are two more MSMs over the same bases.
        let (at_zero, (h1_msm, h2_msm)) = rayon::join(
            || core.proof_parts(Some(note), &z0, &h0, &blinding),
            || {
                rayon::join(
                    || G1Projective::msm_bigint(&pk.h_query, &h1),
                    || G1Projective::msm_bigint(&pk.h_query, &h2),
                )
            },
        );
        // d z / d x is 1 at x and the slope at y, zero elsewhere: A1 and B1 are the
        // query points of x and y so weighted.
        let mut dz = [Fr::one().into_bigint(), slope.into_bigint()];
        let a1 = G1Projective::msm_bigint(&[pk.a_query[X], pk.a_query[Y]], &dz);
        let b1_g1 = G1Projective::msm_bigint(&[pk.b_g1_query[X], pk.b_g1_query[Y]], &dz);
        let b1_g2 = G2Projective::msm_bigint(&[pk.b_g2_query[X], pk.b_g2_query[Y]], &dz);
        // C = L + H(x) + s A(x) + r B(x) - r s delta, and L (the witness MSM) does not
        // move with x: the x terms are H1 + s A1 + r B1, the x^2 term is H2.
        let c1 = h1_msm + a1 * s + b1_g1 * r;
        let g1 = G1Projective::normalize_batch(&[at_zero.a, a1, at_zero.c, c1, h2_msm]);
        let g2 = G2Projective::normalize_batch(&[at_zero.b_g2, b1_g2]);
        // The assignments and quotients are `Zeroizing` and the blinding is wiped when
        // they go out of scope; these scalars are plain values.
        slope.zeroize();
        dz.zeroize();
        Ok(TicketPrecomputation {
            a: [g1[0], g1[1]],
            b: [g2[0], g2[1]],
            c: [g1[2], g1[3], g1[4]],
            fingerprint,
        })
    }

    /// Finishes the proof of the request `inputs` (the same note, root, state,
    /// `rho_next`, limits and receipt key as the ticket was precomputed for, with the
    /// request's `x`): computes `y` and the public inputs natively, then the proof in
    /// four scalar multiplications. Refuses a precomputation made for another ticket,
    /// state, root or key ([`CircuitError::StaleTicketPrecomputation`]); the refused
    /// precomputation is dropped (and wiped) too, as it can serve no request of this
    /// note any more.
    ///
    /// The precomputation is consumed, so one blinding serves one proof:
    ///
    /// ```compile_fail,E0382
    /// # use zkcredits_circuits::{prover::RequestProver, request::RequestInputs};
    /// # use zkcredits_circuits::ticket::TicketPrecomputation;
    /// # fn twice(p: &RequestProver, pre: TicketPrecomputation, inputs: RequestInputs<'_>) {
    /// let first = p.finish_ticket(pre, inputs);
    /// let second = p.finish_ticket(pre, inputs); // `pre` was moved by the first proof
    /// # }
    /// ```
    ///
    /// ```
    /// # use zkcredits_circuits::{prover::RequestProver, request::RequestInputs};
    /// # use zkcredits_circuits::ticket::TicketPrecomputation;
    /// # fn once(p: &RequestProver, pre: TicketPrecomputation, inputs: RequestInputs<'_>) {
    /// let first = p.finish_ticket(pre, inputs);
    /// # }
    /// ```
    pub fn finish_ticket(
        &self,
        pre: TicketPrecomputation,
        inputs: RequestInputs<'_>,
    ) -> Result<TicketProof, CircuitError> {
        let circuit = RequestCircuit::new(inputs)?;
        if self.ticket_fingerprint(&circuit.public) != pre.fingerprint {
            return Err(CircuitError::StaleTicketPrecomputation);
        }
        Ok(TicketProof {
            proof: pre.finish_unchecked(circuit.public.x),
            public: circuit.public,
        })
    }

    /// SHA-256 of the verifying key and of the public inputs with `x, y` left out.
    fn ticket_fingerprint(&self, public: &RequestPublicInputs) -> [u8; 32] {
        let mut hasher = Sha256::new_with_prefix(b"zkcredits/ticket-precompute/v1");
        hasher.update(self.verifying_key_hash());
        let fixed = RequestPublicInputs {
            x: Fr::zero(),
            y: Fr::zero(),
            ..*public
        };
        for v in fixed.to_field_elements() {
            hasher.update(zkcredits_protocol::field::to_be_bytes(&v));
        }
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::CircuitShape;

    #[test]
    fn the_request_circuit_takes_x_once_and_any_other_shape_is_refused() {
        let shape = CircuitShape::extract().expect("shape");
        let share = share_row(&shape.matrices).expect("the request circuit's share row");
        assert_eq!(share.b_x, Fr::one());
        assert_eq!(share.c_y, Fr::one());

        let broken = |edit: &dyn Fn(&mut Vec<Matrix<Fr>>)| {
            let mut matrices = shape.matrices.clone();
            edit(&mut matrices);
            share_row(&matrices).is_err()
        };
        let other = (share.row + 1) % shape.num_constraints;
        assert!(
            broken(&|m| m[2][other].push((Fr::one(), X))),
            "x in a second row"
        );
        assert!(
            broken(&|m| m[0][other].push((Fr::one(), Y))),
            "y in a second row"
        );
        assert!(broken(&|m| m[0][share.row].push((Fr::one(), X))), "x in A");
        assert!(broken(&|m| m[0][share.row].push((Fr::one(), Y))), "y in A");
        assert!(broken(&|m| m[1][share.row].push((Fr::one(), Y))), "y in B");
        assert!(broken(&|m| m[2][share.row].push((Fr::one(), X))), "x in C");
        assert!(
            broken(&|m| m[1][share.row].retain(|(_, i)| *i != X)),
            "no x"
        );
        assert!(
            broken(&|m| m[2][share.row].retain(|(_, i)| *i != Y)),
            "no y"
        );
    }
}
