// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {PoseidonT3} from "poseidon-solidity/PoseidonT3.sol";
import {PoseidonT5} from "poseidon-solidity/PoseidonT5.sol";
import {IERC20Minimal} from "./IERC20Minimal.sol";
import {BabyJubJub} from "./BabyJubJub.sol";

/// @notice The close proof verifier (src/CloseVerifier.sol, generated from the close circuit's
/// verifying key by crates/circuits/src/solidity.rs). Reverts on an invalid proof.
interface ICloseVerifier {
    function verifyProof(uint256[8] calldata proof, uint256[14] calldata input) external view;
}

/// @title zkcredits pool: anonymous prepaid API credits.
/// @notice Holds the deposits of notes, the Merkle tree of their leaves and the history of
/// its roots, the outstanding credit per expiry epoch, slashing of double-spent notes, the
/// provider's claim of expired epochs, and the on-chain log of policy violations.
/// See docs/PROTOCOL.md (sections 2, 3 and 6) and contracts/README.md.
///
/// Hashes are Poseidon over the BN254 scalar field with circomlib's parameters
/// (poseidon-solidity). The first input of every hash except a Merkle node is a domain tag.
///
/// The tree is a Lean Incremental Merkle Tree (the shape of the zk-kit lean-imt package): a node
/// with no right child takes the value of its left child, there are no zero leaves, the
/// root of a one-leaf tree is that leaf, and a parent is H(left, right) with no tag. It is
/// kept as a frontier (one node per level): a deposit hashes its leaf up through the complete
/// subtrees it closes (one hash per trailing 1 bit of its index, one on average) and writes
/// one frontier slot, and computes no root. `commitRoot()` (permissionless, and called at the
/// end of every `depositMany`) folds the frontier into the root and pushes it into a ring of
/// the last `rootHistorySize` committed roots. Roots are identical to the InternalLeanIMT of
/// zk-kit lean-imt.sol fed the same leaves (checked by contracts/test/pool.test.mjs).
///
/// Gateways accept the roots their own indexer computes from `Deposited` events; only what
/// must be checked on chain (the close) needs a committed root, and anyone can commit one.
///
/// A note is settled once, by NC = H(CLOSE, k) (`closedOrSlashed`): by a cooperative close
/// (the provider's clearance, paid at once), by a unilateral close (held in `pendingCloses`
/// for `challengeWindow`, then `finalize`), by a successful `challenge` of a pending close, or
/// by `slash`. A close proof (docs/PROTOCOL.md section 6) is checked by the generated
/// `CloseVerifier` with public inputs the pool fills itself: x_w from the payout address and
/// the relay fee with its recipient, C_max, P_max, and a server key the provider accepted.
///
/// A close may be sent by anyone (a relayer): the user needs no funded account of their own,
/// so the close transaction never comes from the account that deposited. What the relayer
/// earns (`relayFee` credit units, out of U, to `relayer`) is bound into x_w like the payout
/// address, so nobody can change who gets what after the proof is made.
contract ZkCreditsPool {
    // ---------------------------------------------------------------- constants

    /// @notice The BN254 scalar field modulus: note ids and secrets must be below it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @notice How long a revoked receipt key stays usable for closes: 30 days, longer than
    /// any sensible challenge window plus the time a user needs to notice and close.
    uint64 public constant KEY_REVOCATION_NOTICE = 30 days;

    /// @notice Where penalties are burned at close (used by the close flow).
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    /// @notice The circuits prove membership in at most this many levels: a deeper tree
    /// would accept deposits that could never be spent or closed.
    uint8 public constant MAX_TREE_DEPTH = 20;

    // Domain tags, the first Poseidon input (docs/PROTOCOL.md section 2). STATE, RECEIPT,
    // SLOPE, NULLIFIER and NOTE are only hashed off chain or in circuits today.
    uint256 internal constant TAG_ID = 1;
    uint256 internal constant TAG_LEAF = 2;
    uint256 internal constant TAG_STATE = 3;
    uint256 internal constant TAG_RECEIPT = 4;
    uint256 internal constant TAG_SLOPE = 5;
    uint256 internal constant TAG_NULLIFIER = 6;
    uint256 internal constant TAG_CLOSE = 7;
    uint256 internal constant TAG_NOTE = 8;

    /// @notice EIP-712 type of the provider's close clearance.
    bytes32 public constant CLEARANCE_TYPEHASH = keccak256("CloseClearance(uint256 nc,uint256 nullifier)");
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant DOMAIN_NAME_HASH = keccak256("zkcredits");
    bytes32 internal constant DOMAIN_VERSION_HASH = keccak256("1");
    /// @dev secp256k1 order / 2: a clearance with a larger s is refused (no malleability).
    uint256 internal constant SECP256K1_HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ---------------------------------------------------------------- types

    /// @notice Deployment parameters (see contracts/README.md).
    /// @param token the ERC-20 that notes are paid in
    /// @param provider the first provider (receives revenue, slashes, expired epochs)
    /// @param unit token base units per credit unit (> 0, <= 2^128)
    /// @param cMax charge per request in credit units, taken up front (> 0)
    /// @param pMax largest policy penalty per request in credit units
    /// @param epochLen seconds per epoch (> 0)
    /// @param noteLifetime epochs from the deposit's epoch to its expiry epoch (> 0)
    /// @param grace seconds after the end of an epoch before the provider may claim it
    /// @param challengeWindow seconds a unilateral close waits for challenges (close flow)
    /// @param bountyBps share of a slashed note paid to the slasher, in basis points (<= 10000)
    /// @param treeDepth the tree holds at most 2^treeDepth leaves (1..20, the levels the circuits prove; default 20)
    /// @param rootHistorySize how many recent roots are known (1..65536; default 64)
    /// @param genesisTime start of epoch 0 (unix seconds, <= now); 0 means the deploy time
    /// @param denominations allowed note amounts in credit units, strictly increasing;
    ///        empty means any amount
    /// @param closeVerifier the CloseVerifier contract
    /// @param serverKeyX x of the first accepted receipt key (BabyJubJub); 0 with Y = 0: none yet
    /// @param serverKeyY y of that key
    struct Config {
        address token;
        address provider;
        uint256 unit;
        uint64 cMax;
        uint64 pMax;
        uint64 epochLen;
        uint64 noteLifetime;
        uint64 grace;
        uint64 challengeWindow;
        uint16 bountyBps;
        uint8 treeDepth;
        uint32 rootHistorySize;
        uint64 genesisTime;
        uint64[] denominations;
        address closeVerifier;
        uint256 serverKeyX;
        uint256 serverKeyY;
    }

    /// @notice A close as the closer submits it: the proof's public values that the pool does
    /// not fill itself, the payout address, the relay fee and its recipient (both bound by
    /// x_w), and the server key the last receipt was signed by.
    struct CloseArgs {
        uint256 root; // a committed root the note is proven under
        uint256 nc; // NC = H(CLOSE, k)
        uint256 nullifier; // N_j, the nullifier of ticket j = n + m
        uint256 yw; // y_w = k + a x_w
        uint64 deposit; // D
        uint64 expiryEpoch; // E
        uint64 payoutAmount; // U, credit units to `payout`
        uint64 burn; // B, credit units burned
        bool lostLastReceipt; // m
        address payout; // receives U - relayFee credit units
        address relayer; // receives relayFee credit units; address(0) with a fee of 0
        uint64 relayFee; // credit units out of U, <= U
        uint256 serverKeyX;
        uint256 serverKeyY;
    }

    /// @notice A unilateral close waiting for its challenge window (3 slots).
    struct PendingClose {
        address payout;
        uint64 deadline; // 0: none
        uint64 payoutAmount;
        uint64 burn;
        uint64 deposit;
        uint64 expiryEpoch;
        uint256 nullifier;
        uint256 yw;
        address relayer;
        uint64 relayFee;
    }

    /// @notice A deposited note, keyed by ID = H(ID, k). Packed in one storage slot.
    struct Note {
        uint64 amount; // D, credit units
        uint64 expiryEpoch; // E
        uint64 leafIndex; // position of its leaf in the tree
        bool exists;
    }

    /// @dev Per expiry epoch: credit units deposited minus slashed (minus closed, later).
    struct EpochInfo {
        uint192 outstanding;
        bool claimed;
    }

    // ---------------------------------------------------------------- events

    /// @notice One per note. With these alone an indexer rebuilds the tree: leaves in
    /// `leafIndex` order. No root: a deposit does not compute one (see `commitRoot`).
    event Deposited(uint256 indexed id, uint256 leafIndex, uint256 leaf, uint64 amount, uint64 expiryEpoch);
    /// @notice A root entered the ring of known roots: the root of the first `size` leaves.
    event RootCommitted(uint256 root, uint256 size);
    event Slashed(
        uint256 indexed id, uint256 indexed nc, uint256 k, address slasher, uint256 bounty, uint256 toProvider
    );
    event ViolationRecorded(uint256 indexed nullifier, bytes32 evidenceHash, uint64 penalty);
    event ExpiredClaimed(uint64 indexed epoch, uint256 amount);
    event ProviderTransferStarted(address indexed previousProvider, address indexed newProvider);
    event ProviderTransferred(address indexed previousProvider, address indexed newProvider);
    /// @notice A note was closed and paid: U less the relay fee to `payout`, the relay fee to
    /// `relayer`, toProvider to the provider, burned to BURN_ADDRESS (token base units).
    /// `nullifier` is N_j, which the gateway records.
    event Closed(
        uint256 indexed nc,
        uint256 nullifier,
        address payout,
        uint256 toPayout,
        uint256 toProvider,
        uint256 burned,
        address relayer,
        uint256 toRelayer
    );
    /// @notice A unilateral close is waiting until `deadline` for challenges. A gateway that
    /// holds another share of ticket `nullifier` recovers (k, a) and calls `challenge`.
    event CloseRequested(
        uint256 indexed nc,
        uint256 nullifier,
        uint256 xw,
        uint256 yw,
        address payout,
        uint64 payoutAmount,
        uint64 burn,
        uint64 deposit,
        uint64 expiryEpoch,
        uint64 deadline,
        address relayer,
        uint64 relayFee
    );
    /// @notice A pending close was shown to spend a used ticket: cancelled, and the note
    /// slashed (a `Slashed` event follows).
    event CloseChallenged(uint256 indexed nc, address challenger);
    event ServerKeyAccepted(uint256 x, uint256 y);
    /// @notice Closes naming this key are refused from `retiresAt` on; until then every
    /// note whose last receipt it signed can still close.
    event ServerKeyRevoked(uint256 x, uint256 y, uint64 retiresAt);

    // ---------------------------------------------------------------- errors

    error InvalidConfig(string parameter);
    error Reentrancy();
    error NotProvider();
    error NotPendingProvider();
    error ZeroAmount();
    error AmountNotMultipleOfUnit(uint256 amount);
    error AmountTooLarge(uint256 credits);
    error DenominationNotAllowed(uint256 credits);
    error TransferAmountMismatch(uint256 expected, uint256 received);
    error TokenCallFailed();
    error NotAFieldElement(uint256 value);
    error NoteAlreadyDeposited(uint256 id);
    error TreeFull();
    error EmptyBatch();
    error LengthMismatch();
    error UnknownNote();
    error NoteAlreadySettled();
    error EpochClaimed();
    error EpochNotExpired();
    error PenaltyTooLarge(uint256 index, uint64 penalty);
    error UnknownRoot(uint256 root);
    error ClosePending();
    error NoPendingClose();
    error ChallengeWindowOpen(uint64 deadline);
    error InvalidChallenge();
    error InvalidClearance();
    error AmountsExceedDeposit();
    error InvalidPayout();
    /// @notice The relay fee is more than U, or a fee names no recipient.
    error InvalidRelayFee();
    error UnknownServerKey();
    /// @notice The key is not a non-identity point of BabyJubJub's prime-order subgroup.
    error InvalidServerKey();
    /// @notice The key was revoked and its notice period is over.
    error ServerKeyRetired(uint64 retiredAt);
    /// @dev The close verifier's own error, passed on unchanged (declared for the ABI).
    error InvalidProof();
    /// @dev The close verifier's own error, passed on unchanged (declared for the ABI).
    error InputNotInField(uint256 index);

    // ---------------------------------------------------------------- immutables

    IERC20Minimal public immutable token;
    uint256 public immutable unit;
    uint64 public immutable cMax;
    uint64 public immutable pMax;
    uint64 public immutable epochLen;
    uint64 public immutable noteLifetime;
    uint64 public immutable grace;
    uint64 public immutable challengeWindow;
    uint16 public immutable bountyBps;
    uint8 public immutable treeDepth;
    uint32 public immutable rootHistorySize;
    uint64 public immutable genesisTime;
    bool internal immutable _anyAmount;
    /// @notice Verifies close proofs.
    ICloseVerifier public immutable closeVerifier;

    // ---------------------------------------------------------------- storage

    // Tree size (leaves), number of roots committed so far, and the tree size of the last
    // committed root, in one slot (slot 0).
    uint64 internal _treeSize;
    uint64 internal _rootCount;
    uint64 internal _committedSize;

    /// @notice Receives revenue (slashes, expired epochs) and records violations.
    address public provider;
    /// @notice Set by `transferProvider`, becomes `provider` on `acceptProvider`.
    address public pendingProvider;
    // _frontier[l] is the root of the most recently completed subtree of 2^l leaves, i.e.
    // of the leftmost such subtree not yet hashed into a bigger one when bit l of the
    // size is set (LeanIMT's `sideNodes`, written only when the subtree completes).
    uint256[33] internal _frontier;
    // Ring of recent roots: root number j (0-based, in push order) is at j % rootHistorySize.
    mapping(uint256 => uint256) internal _rootRing;

    /// @notice Deposited notes by ID = H(ID, k).
    mapping(uint256 id => Note) public deposits;
    mapping(uint64 epoch => EpochInfo) internal _epochs;
    /// @notice NC = H(CLOSE, k) of every note that was slashed (and, later, closed).
    mapping(uint256 nc => bool) public closedOrSlashed;

    uint64[] internal _denominations;
    mapping(uint64 credits => bool) internal _denominationAllowed;

    /// @notice Unilateral closes waiting for their challenge window, by NC.
    mapping(uint256 nc => PendingClose) public pendingCloses;
    /// @notice Receipt keys (BabyJubJub, keccak256(x, y)) a close may name. Keys are only
    /// ever added: a user whose last receipt was signed by an older key can still close.
    mapping(bytes32 keyHash => bool) public serverKeyAccepted;
    /// @notice When a revoked key stops being accepted (0: not revoked).
    mapping(bytes32 keyHash => uint64) public serverKeyRetiresAt;

    bool private transient _entered;

    // ---------------------------------------------------------------- modifiers

    /// @dev Every function that moves tokens carries it (transient storage, EIP-1153).
    modifier nonReentrant() {
        if (_entered) revert Reentrancy();
        _entered = true;
        _;
        _entered = false;
    }

    modifier onlyProvider() {
        if (msg.sender != provider) revert NotProvider();
        _;
    }

    // ---------------------------------------------------------------- constructor

    constructor(Config memory cfg) {
        if (cfg.token.code.length == 0) revert InvalidConfig("token");
        if (cfg.provider == address(0)) revert InvalidConfig("provider");
        if (cfg.unit == 0 || cfg.unit > type(uint128).max) revert InvalidConfig("unit");
        if (cfg.cMax == 0) revert InvalidConfig("cMax");
        if (cfg.epochLen == 0) revert InvalidConfig("epochLen");
        if (cfg.noteLifetime == 0) revert InvalidConfig("noteLifetime");
        if (cfg.bountyBps > 10_000) revert InvalidConfig("bountyBps");
        if (cfg.treeDepth == 0 || cfg.treeDepth > MAX_TREE_DEPTH) revert InvalidConfig("treeDepth");
        if (cfg.rootHistorySize == 0 || cfg.rootHistorySize > 65_536) revert InvalidConfig("rootHistorySize");
        if (cfg.genesisTime > block.timestamp) revert InvalidConfig("genesisTime");
        if (cfg.closeVerifier.code.length == 0) revert InvalidConfig("closeVerifier");
        if (
            (cfg.serverKeyX != 0 || cfg.serverKeyY != 0) && !BabyJubJub.isSubgroupKey(cfg.serverKeyX, cfg.serverKeyY)
        ) {
            revert InvalidConfig("serverKey");
        }

        uint64 previous = 0;
        for (uint256 i = 0; i < cfg.denominations.length; ++i) {
            uint64 d = cfg.denominations[i];
            if (d <= previous) revert InvalidConfig("denominations");
            previous = d;
            _denominations.push(d);
            _denominationAllowed[d] = true;
        }

        token = IERC20Minimal(cfg.token);
        unit = cfg.unit;
        cMax = cfg.cMax;
        pMax = cfg.pMax;
        epochLen = cfg.epochLen;
        noteLifetime = cfg.noteLifetime;
        grace = cfg.grace;
        challengeWindow = cfg.challengeWindow;
        bountyBps = cfg.bountyBps;
        treeDepth = cfg.treeDepth;
        rootHistorySize = cfg.rootHistorySize;
        genesisTime = cfg.genesisTime == 0 ? uint64(block.timestamp) : cfg.genesisTime;
        _anyAmount = cfg.denominations.length == 0;
        closeVerifier = ICloseVerifier(cfg.closeVerifier);

        provider = cfg.provider;
        emit ProviderTransferred(address(0), cfg.provider);
        if (cfg.serverKeyX != 0 || cfg.serverKeyY != 0) _acceptServerKey(cfg.serverKeyX, cfg.serverKeyY);
    }

    // ---------------------------------------------------------------- deposits

    /// @notice Deposit one note with ID `id` = H(ID, k), paying `amount` token base units
    /// (pulled with transferFrom; the caller approves first). The note's D is what the pool
    /// actually received divided by `unit`; its expiry epoch is currentEpoch() + noteLifetime.
    function deposit(uint256 id, uint256 amount) external nonReentrant {
        _checkAmount(amount);
        uint256 index = _treeSize;
        if (index >> treeDepth != 0) revert TreeFull();
        uint256 received = _pull(amount);
        if (received % unit != 0) revert AmountNotMultipleOfUnit(received);
        uint64 d = _credits(received);
        uint64 e = currentEpoch() + noteLifetime;

        uint256 leaf = _addNote(id, d, e, index);
        _epochs[e].outstanding += d;
        _insert(leaf, index);
        _treeSize = uint64(index + 1);
        emit Deposited(id, index, leaf, d, e);
    }

    /// @notice Deposit several notes with one transferFrom of the sum of `amounts`. The
    /// pool must receive exactly that sum (fee-on-transfer tokens are refused). Commits the
    /// root at the end, so the batch leaves a known root that includes its notes.
    function depositMany(uint256[] calldata ids, uint256[] calldata amounts) external nonReentrant {
        uint256 n = ids.length;
        if (n == 0) revert EmptyBatch();
        if (n != amounts.length) revert LengthMismatch();
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            _checkAmount(amounts[i]);
            total += amounts[i];
        }
        uint256 first = _treeSize;
        if ((first + n - 1) >> treeDepth != 0) revert TreeFull();
        uint256 received = _pull(total);
        if (received != total) revert TransferAmountMismatch(total, received);
        _addBatch(ids, amounts, first);
        _commitRoot();
    }

    // ---------------------------------------------------------------- roots

    /// @notice Fold the frontier into the root of the whole tree (popcount(treeSize) - 1
    /// hashes) and push it into the ring of known roots. Permissionless. Does nothing (and
    /// emits nothing) when no deposit came since the last commit. Returns the current root.
    function commitRoot() external returns (uint256) {
        return _commitRoot();
    }

    // ---------------------------------------------------------------- slashing

    /// @notice Slash a note whose secret `k` became public (a double spend reveals it).
    /// Permissionless. Pays bountyBps of the note to the caller and the rest to the provider.
    function slash(uint256 k) external nonReentrant {
        if (k >= SNARK_SCALAR_FIELD) revert NotAFieldElement(k);
        uint256 id = PoseidonT3.hash([TAG_ID, k]);
        Note memory note = deposits[id];
        if (!note.exists) revert UnknownNote();
        uint256 nc = PoseidonT3.hash([TAG_CLOSE, k]);
        if (closedOrSlashed[nc]) revert NoteAlreadySettled();
        closedOrSlashed[nc] = true;
        // A pending close already took the note out of its epoch's outstanding amount (so
        // a claim could not take it twice); otherwise the slash does, unless claimed.
        if (!_cancelPendingClose(nc)) {
            EpochInfo storage ep = _epochs[note.expiryEpoch];
            if (ep.claimed) revert EpochClaimed();
            ep.outstanding -= note.amount;
        }
        _paySlash(id, nc, k, note.amount);
    }

    /// @dev Pays a slashed note: bountyBps to the caller, the rest to the provider.
    function _paySlash(uint256 id, uint256 nc, uint256 k, uint64 amount) private {
        uint256 value = uint256(amount) * unit;
        uint256 bounty = value * bountyBps / 10_000;
        uint256 toProvider = value - bounty;
        address to = provider;
        emit Slashed(id, nc, k, msg.sender, bounty, toProvider);

        if (bounty != 0) _send(msg.sender, bounty);
        if (toProvider != 0) _send(to, toProvider);
    }

    /// @dev Cancels the pending close on `nc`, if any; returns whether there was one.
    function _cancelPendingClose(uint256 nc) internal returns (bool) {
        if (pendingCloses[nc].deadline == 0) return false;
        delete pendingCloses[nc];
        return true;
    }

    // ---------------------------------------------------------------- closes

    /// @notice Close a note at once with the provider's clearance: an EIP-712 signature by
    /// `provider` over CloseClearance(nc, nullifier) in this pool's domain, given after the
    /// gateway recorded N_j as spent. Pays U - relayFee to `c.payout`, relayFee to
    /// `c.relayer`, D - U - B to the provider and B to BURN_ADDRESS. Anyone may send it (the
    /// gateway relays it for users who have no other funded account).
    function closeCooperative(CloseArgs calldata c, uint256[8] calldata proof, bytes calldata clearance)
        external
        nonReentrant
    {
        _checkClose(c);
        if (_recover(clearanceDigest(c.nc, c.nullifier), clearance) != provider) revert InvalidClearance();
        _verifyClose(c, proof);
        closedOrSlashed[c.nc] = true;
        _epochs[c.expiryEpoch].outstanding -= c.deposit;
        _payClose(c.nc, c.nullifier, c.payout, c.payoutAmount, c.burn, c.deposit, c.relayer, c.relayFee);
    }

    /// @notice Close a note without the provider: held for `challengeWindow` seconds, during
    /// which anyone holding another share of ticket N_j can `challenge` it; then anyone may
    /// `finalize` it. The note's deposit leaves its epoch's outstanding amount now.
    function closeUnilateral(CloseArgs calldata c, uint256[8] calldata proof) external nonReentrant {
        _checkClose(c);
        _verifyClose(c, proof);
        uint64 deadline = uint64(block.timestamp) + challengeWindow;
        pendingCloses[c.nc] = PendingClose({
            payout: c.payout,
            deadline: deadline,
            payoutAmount: c.payoutAmount,
            burn: c.burn,
            deposit: c.deposit,
            expiryEpoch: c.expiryEpoch,
            nullifier: c.nullifier,
            yw: c.yw,
            relayer: c.relayer,
            relayFee: c.relayFee
        });
        _epochs[c.expiryEpoch].outstanding -= c.deposit;
        emit CloseRequested(
            c.nc,
            c.nullifier,
            withdrawalX(c.payout, c.relayer, c.relayFee),
            c.yw,
            c.payout,
            c.payoutAmount,
            c.burn,
            c.deposit,
            c.expiryEpoch,
            deadline,
            c.relayer,
            c.relayFee
        );
    }

    /// @notice Show that the pending close `nc` spends a ticket already used: (k, a) with
    /// H(NULLIFIER, a) = N_j and k + a x_w = y_w (and H(CLOSE, k) = nc). Two shares of the
    /// ticket give them. Cancels the close and slashes the note (bountyBps to the caller).
    function challenge(uint256 nc, uint256 k, uint256 a) external nonReentrant {
        PendingClose memory pc = pendingCloses[nc];
        if (pc.deadline == 0) revert NoPendingClose();
        if (k >= SNARK_SCALAR_FIELD || a >= SNARK_SCALAR_FIELD) revert InvalidChallenge();
        uint256 xw = withdrawalX(pc.payout, pc.relayer, pc.relayFee);
        uint256 share = addmod(k, mulmod(a, xw, SNARK_SCALAR_FIELD), SNARK_SCALAR_FIELD);
        if (share != pc.yw) revert InvalidChallenge();
        if (PoseidonT3.hash([TAG_NULLIFIER, a]) != pc.nullifier) revert InvalidChallenge();
        if (PoseidonT3.hash([TAG_CLOSE, k]) != nc) revert InvalidChallenge();
        delete pendingCloses[nc];
        closedOrSlashed[nc] = true;
        emit CloseChallenged(nc, msg.sender);
        _paySlash(PoseidonT3.hash([TAG_ID, k]), nc, k, pc.deposit);
    }

    /// @notice Pay out the pending close `nc` once its challenge window has passed.
    /// Permissionless: the payout address is fixed by the proof.
    function finalize(uint256 nc) external nonReentrant {
        PendingClose memory pc = pendingCloses[nc];
        if (pc.deadline == 0) revert NoPendingClose();
        if (block.timestamp < pc.deadline) revert ChallengeWindowOpen(pc.deadline);
        delete pendingCloses[nc];
        closedOrSlashed[nc] = true;
        _payClose(nc, pc.nullifier, pc.payout, pc.payoutAmount, pc.burn, pc.deposit, pc.relayer, pc.relayFee);
    }

    /// @notice The close binding x_w: the first 31 bytes of SHA-256("zkcredits/close/v2" ||
    /// chainid (8 bytes) || pool || payout || relayer || relayFee (8 bytes)), big-endian.
    function withdrawalX(address payout, address relayer, uint64 relayFee) public view returns (uint256) {
        return uint256(
            sha256(
                abi.encodePacked("zkcredits/close/v2", uint64(block.chainid), address(this), payout, relayer, relayFee)
            )
        ) >> 8;
    }

    /// @notice The EIP-712 digest the provider signs to clear a cooperative close.
    function clearanceDigest(uint256 nc, uint256 nullifier) public view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(DOMAIN_TYPEHASH, DOMAIN_NAME_HASH, DOMAIN_VERSION_HASH, block.chainid, address(this))
        );
        bytes32 structHash = keccak256(abi.encode(CLEARANCE_TYPEHASH, nc, nullifier));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @dev Checks of a close that need no proof: NC unused and not pending, a committed
    /// root, the epoch not claimed, an accepted server key, amounts within the deposit.
    function _checkClose(CloseArgs calldata c) private view {
        if (closedOrSlashed[c.nc]) revert NoteAlreadySettled();
        if (pendingCloses[c.nc].deadline != 0) revert ClosePending();
        if (!_isKnownRoot(c.root)) revert UnknownRoot(c.root);
        if (_epochs[c.expiryEpoch].claimed) revert EpochClaimed();
        if (c.payout == address(0)) revert InvalidPayout();
        if (uint256(c.payoutAmount) + c.burn > c.deposit) revert AmountsExceedDeposit();
        // A fee is paid out of U, and only to someone: tokens sent to address(0) would be lost.
        if (c.relayFee > c.payoutAmount || (c.relayFee != 0 && c.relayer == address(0))) revert InvalidRelayFee();
        bytes32 key = keccak256(abi.encode(c.serverKeyX, c.serverKeyY));
        if (!serverKeyAccepted[key]) revert UnknownServerKey();
        uint64 retiresAt = serverKeyRetiresAt[key];
        if (retiresAt != 0 && block.timestamp >= retiresAt) revert ServerKeyRetired(retiresAt);
    }

    /// @dev Verifies the close proof with the public inputs in the circuit's order; the
    /// verifier reverts (InvalidProof, InputNotInField) when it fails.
    function _verifyClose(CloseArgs calldata c, uint256[8] calldata proof) private view {
        uint256[14] memory input = [
            c.root,
            c.nc,
            c.nullifier,
            withdrawalX(c.payout, c.relayer, c.relayFee),
            c.yw,
            uint256(c.deposit),
            uint256(c.expiryEpoch),
            uint256(c.payoutAmount),
            uint256(c.burn),
            c.lostLastReceipt ? 1 : 0,
            uint256(cMax),
            uint256(pMax),
            c.serverKeyX,
            c.serverKeyY
        ];
        closeVerifier.verifyProof(proof, input);
    }

    /// @dev Pays a close (credit units in, token base units out) and emits Closed. The
    /// relay fee `f` comes out of U (`_checkClose` made sure f <= U).
    function _payClose(
        uint256 nc,
        uint256 nullifier,
        address payout,
        uint64 u,
        uint64 b,
        uint64 d,
        address relayer,
        uint64 f
    ) private {
        uint256 toPayout = uint256(u - f) * unit;
        uint256 toRelayer = uint256(f) * unit;
        uint256 burned = uint256(b) * unit;
        uint256 toProvider = uint256(d - u - b) * unit;
        address to = provider;
        emit Closed(nc, nullifier, payout, toPayout, toProvider, burned, relayer, toRelayer);
        if (toPayout != 0) _send(payout, toPayout);
        if (toRelayer != 0) _send(relayer, toRelayer);
        if (toProvider != 0) _send(to, toProvider);
        if (burned != 0) _send(BURN_ADDRESS, burned);
    }

    /// @dev ecrecover of a 65-byte (r, s, v) signature; address(0) for a malformed or
    /// malleable one.
    function _recover(bytes32 digest, bytes calldata sig) private pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        if (uint256(s) > SECP256K1_HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    // ---------------------------------------------------------------- provider

    /// @notice Log policy violations (events only). Penalties are burned at close.
    function recordViolations(
        uint256[] calldata nullifiers,
        bytes32[] calldata evidenceHashes,
        uint64[] calldata penalties
    ) external onlyProvider {
        uint256 n = nullifiers.length;
        if (n != evidenceHashes.length || n != penalties.length) revert LengthMismatch();
        uint64 max = pMax;
        for (uint256 i = 0; i < n; ++i) {
            if (penalties[i] > max) revert PenaltyTooLarge(i, penalties[i]);
            emit ViolationRecorded(nullifiers[i], evidenceHashes[i], penalties[i]);
        }
    }

    /// @notice Claim what is still outstanding for expiry epoch `epoch`, once the epoch has
    /// ended plus `grace` seconds. After this, notes of that epoch can no longer be slashed
    /// (nor closed).
    function claimExpired(uint64 epoch) external nonReentrant onlyProvider {
        if (block.timestamp < uint256(genesisTime) + (uint256(epoch) + 1) * epochLen + grace) {
            revert EpochNotExpired();
        }
        EpochInfo storage ep = _epochs[epoch];
        if (ep.claimed) revert EpochClaimed();
        ep.claimed = true;
        uint256 amount = uint256(ep.outstanding) * unit;
        emit ExpiredClaimed(epoch, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    /// @notice Accept another receipt key for closes: a non-identity point of BabyJubJub's
    /// prime-order subgroup. Accepting a revoked key again cancels its revocation.
    function acceptServerKey(uint256 x, uint256 y) external onlyProvider {
        if (x >= SNARK_SCALAR_FIELD || y >= SNARK_SCALAR_FIELD) revert NotAFieldElement(x >= SNARK_SCALAR_FIELD ? x : y);
        if (!BabyJubJub.isSubgroupKey(x, y)) revert InvalidServerKey();
        _acceptServerKey(x, y);
    }

    /// @notice Revoke a receipt key (a leaked or retired one). Closes naming it keep
    /// working for KEY_REVOCATION_NOTICE seconds, so every note whose last receipt it signed
    /// can still close (a unilateral close requested in time finalizes later as usual).
    function revokeServerKey(uint256 x, uint256 y) external onlyProvider {
        bytes32 key = keccak256(abi.encode(x, y));
        if (!serverKeyAccepted[key]) revert UnknownServerKey();
        if (serverKeyRetiresAt[key] != 0) return;
        uint64 retiresAt = uint64(block.timestamp) + KEY_REVOCATION_NOTICE;
        serverKeyRetiresAt[key] = retiresAt;
        emit ServerKeyRevoked(x, y, retiresAt);
    }

    /// @notice Whether a close may name this receipt key now: accepted, and not revoked or
    /// still within the revocation notice.
    function serverKeyUsable(uint256 x, uint256 y) external view returns (bool) {
        bytes32 key = keccak256(abi.encode(x, y));
        uint64 retiresAt = serverKeyRetiresAt[key];
        return serverKeyAccepted[key] && (retiresAt == 0 || block.timestamp < retiresAt);
    }

    function _acceptServerKey(uint256 x, uint256 y) private {
        bytes32 key = keccak256(abi.encode(x, y));
        serverKeyAccepted[key] = true;
        delete serverKeyRetiresAt[key];
        emit ServerKeyAccepted(x, y);
    }

    /// @notice Start handing the provider role to `newProvider` (address(0) cancels).
    function transferProvider(address newProvider) external onlyProvider {
        pendingProvider = newProvider;
        emit ProviderTransferStarted(msg.sender, newProvider);
    }

    /// @notice Called by the pending provider to take the role.
    function acceptProvider() external {
        if (msg.sender != pendingProvider || msg.sender == address(0)) revert NotPendingProvider();
        address previous = provider;
        provider = msg.sender;
        pendingProvider = address(0);
        emit ProviderTransferred(previous, msg.sender);
    }

    // ---------------------------------------------------------------- views

    /// @notice The last committed root, 0 before the first commit. It covers the first
    /// `committedSize()` leaves; deposits after it are in the tree but not yet in a root.
    function root() public view returns (uint256) {
        uint256 count = _rootCount;
        return count == 0 ? 0 : _rootRing[(count - 1) % rootHistorySize];
    }

    /// @notice Whether `r` is one of the last `rootHistorySize` committed roots. 0 is never
    /// known.
    function isKnownRoot(uint256 r) external view returns (bool) {
        return _isKnownRoot(r);
    }

    /// @dev Newest first: a close normally proves against the latest root (one read).
    function _isKnownRoot(uint256 r) private view returns (bool) {
        if (r == 0) return false;
        uint256 count = _rootCount;
        uint256 ring = rootHistorySize;
        uint256 n = count < ring ? count : ring;
        for (uint256 i = 1; i <= n; ++i) {
            if (_rootRing[(count - i) % ring] == r) return true;
        }
        return false;
    }

    /// @notice Number of leaves in the tree.
    function treeSize() external view returns (uint256) {
        return _treeSize;
    }

    /// @notice Number of roots committed so far.
    function rootCount() external view returns (uint256) {
        return _rootCount;
    }

    /// @notice Number of leaves covered by the last committed root (`root()`).
    function committedSize() external view returns (uint256) {
        return _committedSize;
    }

    /// @notice The epoch of the current block: (block.timestamp - genesisTime) / epochLen.
    function currentEpoch() public view returns (uint64) {
        return uint64((block.timestamp - genesisTime) / epochLen);
    }

    /// @notice Credit units outstanding for expiry epoch `epoch` (kept after a claim).
    function outstanding(uint64 epoch) external view returns (uint256) {
        return _epochs[epoch].outstanding;
    }

    /// @notice Whether the provider has claimed expiry epoch `epoch`.
    function epochClaimed(uint64 epoch) external view returns (bool) {
        return _epochs[epoch].claimed;
    }

    /// @notice Allowed note amounts in credit units; empty means any.
    function denominations() external view returns (uint64[] memory) {
        return _denominations;
    }

    // ---------------------------------------------------------------- internals: notes

    function _checkAmount(uint256 amount) private view {
        if (amount == 0) revert ZeroAmount();
        if (amount % unit != 0) revert AmountNotMultipleOfUnit(amount);
    }

    /// @dev Token amount (a multiple of unit) to D, checking range and denominations.
    function _credits(uint256 amount) private view returns (uint64) {
        uint256 d = amount / unit;
        if (d == 0) revert ZeroAmount();
        if (d > type(uint64).max) revert AmountTooLarge(d);
        if (!_anyAmount && !_denominationAllowed[uint64(d)]) revert DenominationNotAllowed(d);
        return uint64(d);
    }

    /// @dev Records the note and returns its leaf H(LEAF, ID, D, E).
    function _addNote(uint256 id, uint64 d, uint64 e, uint256 index) private returns (uint256 leaf) {
        if (id >= SNARK_SCALAR_FIELD) revert NotAFieldElement(id);
        Note storage note = deposits[id];
        if (note.exists) revert NoteAlreadyDeposited(id);
        note.amount = d;
        note.expiryEpoch = e;
        note.leafIndex = uint64(index);
        note.exists = true;
        leaf = PoseidonT5.hash([TAG_LEAF, id, uint256(d), uint256(e)]);
    }

    /// @dev The notes of a depositMany whose tokens have arrived: insert all leaves (the
    /// caller commits the root).
    function _addBatch(uint256[] calldata ids, uint256[] calldata amounts, uint256 first) private {
        uint256 n = ids.length;
        uint64 e = currentEpoch() + noteLifetime;
        uint256[] memory leaves = new uint256[](n);
        uint64[] memory credits = new uint64[](n);
        uint256 sum = 0;
        for (uint256 i = 0; i < n; ++i) {
            uint64 d = _credits(amounts[i]);
            credits[i] = d;
            sum += d;
            leaves[i] = _addNote(ids[i], d, e, first + i);
            _insert(leaves[i], first + i);
        }
        _epochs[e].outstanding += uint192(sum);
        _treeSize = uint64(first + n);
        for (uint256 i = 0; i < n; ++i) {
            emit Deposited(ids[i], first + i, leaves[i], credits[i], e);
        }
    }

    // ---------------------------------------------------------------- internals: tree

    /// @dev Appends `leaf` at `index` (= the current size): hashes it up through the
    /// completed subtrees (one per trailing 1 bit of index) and stores the new subtree
    /// root in the frontier, at the level of the lowest set bit of index + 1. Does not
    /// update _treeSize.
    function _insert(uint256 leaf, uint256 index) private {
        uint256 level = 0;
        uint256 node = leaf;
        while (index & 1 == 1) {
            node = PoseidonT3.hash([_frontier[level], node]);
            index >>= 1;
            unchecked {
                ++level;
            }
        }
        _frontier[level] = node;
    }

    /// @dev The LeanIMT root of a tree of `size` > 0 leaves: start from the frontier node
    /// of the lowest set bit of size and fold upwards, hashing in the subtree of each higher
    /// set bit as the left child (popcount(size) - 1 hashes).
    function _rootOf(uint256 size) private view returns (uint256 acc) {
        uint256 level = _lowestSetBit(size);
        acc = _frontier[level];
        size >>= level + 1;
        unchecked {
            ++level;
        }
        while (size != 0) {
            if (size & 1 == 1) acc = PoseidonT3.hash([_frontier[level], acc]);
            size >>= 1;
            unchecked {
                ++level;
            }
        }
    }

    /// @dev Commits the root of the whole tree unless it is already the last committed one
    /// (the tree is append-only, so the root changes exactly when the size does).
    function _commitRoot() private returns (uint256 newRoot) {
        uint256 size = _treeSize;
        if (size == _committedSize) return root();
        newRoot = _rootOf(size);
        uint256 count = _rootCount;
        _rootRing[count % rootHistorySize] = newRoot;
        _rootCount = uint64(count + 1);
        _committedSize = uint64(size);
        emit RootCommitted(newRoot, size);
    }

    /// @dev The index of the lowest set bit of `x` > 0.
    function _lowestSetBit(uint256 x) private pure returns (uint256 l) {
        while (x & 1 == 0) {
            x >>= 1;
            unchecked {
                ++l;
            }
        }
    }

    // ---------------------------------------------------------------- internals: token

    /// @dev transferFrom(msg.sender -> this) and return what the pool's balance grew by.
    function _pull(uint256 amount) private returns (uint256) {
        uint256 before = token.balanceOf(address(this));
        _callToken(abi.encodeCall(IERC20Minimal.transferFrom, (msg.sender, address(this), amount)));
        uint256 afterwards = token.balanceOf(address(this));
        if (afterwards < before) revert TransferAmountMismatch(amount, 0);
        return afterwards - before;
    }

    function _send(address to, uint256 amount) private {
        _callToken(abi.encodeCall(IERC20Minimal.transfer, (to, amount)));
    }

    /// @dev A token call that must not revert and must return true or nothing (for tokens
    /// that return no bool); a call to an address without code fails. A revert of the
    /// token is passed on as it is (e.g. its own insufficient-allowance error).
    function _callToken(bytes memory data) private {
        (bool ok, bytes memory ret) = address(token).call(data);
        if (!ok) {
            if (ret.length == 0) revert TokenCallFailed();
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length == 0) {
            if (address(token).code.length == 0) revert TokenCallFailed();
        } else if (ret.length < 32 || abi.decode(ret, (uint256)) != 1) {
            revert TokenCallFailed();
        }
    }
}
