//! The room's text chat over the signaling connection: a message reaches every
//! participant and viewer (those served by another worker too), a late joiner gets the
//! last 100, a flood from one sender and an over-long message are refused with a clear
//! `chatRefused` while everyone else's messages still arrive, and viewers write only
//! where the server allows it. Clients are bare WebSockets: the chat needs no media.

mod common;

use std::time::Duration;

use common::{connect_ws, https_get, recv, send, temp_dir, Ws};
use lanrelay::signaling::protocol::{ChatLine, ClientMsg, ErrorCode, PeerId, Role, ServerMsg};

/// One signaling connection in a room.
struct Client {
    ws: Ws,
    id: PeerId,
    /// The `chatHistory` that followed `joined`: (messages, can write, max length).
    history: (Vec<ChatLine>, bool, usize),
    resume: Option<String>,
}

async fn server_with(f: impl FnOnce(&mut lanrelay::Config)) -> lanrelay::Server {
    let mut config = lanrelay::Config::loopback(temp_dir("chat"));
    f(&mut config);
    lanrelay::start(config).await.expect("server starts")
}

async fn join(server: &lanrelay::Server, room: &str, name: &str, role: Role) -> Client {
    let mut ws = connect_ws(server).await;
    let join = ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        role,
        mode: Default::default(),
        token: None,
        host_token: None,
    };
    send(&mut ws, &join).await;
    let (id, resume) = match recv(&mut ws).await {
        Some(ServerMsg::Joined { id, resume, .. }) => (id, resume),
        other => panic!("{name}: expected joined, got {other:?}"),
    };
    let history = next_history(&mut ws, name).await;
    Client {
        ws,
        id,
        history,
        resume,
    }
}

/// How long a chat message may take (the server's pings every 5 s keep `recv` from
/// timing out by itself).
const WAIT: Duration = Duration::from_secs(10);

/// The next `chatHistory`, skipping messages that are not chat.
async fn next_history(ws: &mut Ws, who: &str) -> (Vec<ChatLine>, bool, usize) {
    tokio::time::timeout(WAIT, history_of(ws, who))
        .await
        .unwrap_or_else(|_| panic!("{who}: no chat history within {WAIT:?}"))
}

async fn history_of(ws: &mut Ws, who: &str) -> (Vec<ChatLine>, bool, usize) {
    loop {
        match recv(ws).await {
            Some(ServerMsg::ChatHistory {
                messages,
                can_write,
                max_length,
            }) => return (messages, can_write, max_length),
            Some(ServerMsg::Chat { .. } | ServerMsg::ChatRefused { .. }) | None => {
                panic!("{who}: expected the chat history first")
            }
            Some(_) => continue,
        }
    }
}

/// What the chat said next: a message, or a refusal.
#[derive(Debug)]
enum Heard {
    Message(ChatLine),
    Refused(ErrorCode, String),
}

/// The next chat message or refusal, skipping other messages.
async fn next_chat(ws: &mut Ws) -> Heard {
    tokio::time::timeout(WAIT, chat_of(ws))
        .await
        .unwrap_or_else(|_| panic!("no chat message within {WAIT:?}"))
}

async fn chat_of(ws: &mut Ws) -> Heard {
    loop {
        match recv(ws).await {
            Some(ServerMsg::Chat { message }) => return Heard::Message(message),
            Some(ServerMsg::ChatRefused { code, message }) => return Heard::Refused(code, message),
            Some(ServerMsg::Error { code, message }) => panic!("error {code:?}: {message}"),
            None => panic!("the connection closed"),
            Some(_) => continue,
        }
    }
}

async fn next_message(ws: &mut Ws) -> ChatLine {
    match next_chat(ws).await {
        Heard::Message(m) => m,
        other => panic!("expected a chat message, got {other:?}"),
    }
}

/// Nothing chat-related arrives for a moment.
async fn quiet(ws: &mut Ws) {
    let end = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(m) = tokio::time::timeout_at(end, recv(ws)).await {
        assert!(
            !matches!(
                m,
                Some(ServerMsg::Chat { .. } | ServerMsg::ChatRefused { .. })
            ),
            "unexpected {m:?}"
        );
    }
}

async fn chat(c: &mut Client, text: &str) {
    send(&mut c.ws, &ClientMsg::Chat { text: text.into() }).await;
}

/// A `lanrelay_…{limit="…"}` or plain sample of `/metrics`.
async fn metric(server: &lanrelay::Server, sample: &str) -> f64 {
    let (status, body) = https_get(server, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_everyone_and_late_joiners_get_the_last_100() {
    let server = server_with(|c| c.chat.rate = 1000).await;
    let mut ann = join(&server, "talk", "Ann", Role::Participant).await;
    let mut bob = join(&server, "talk", "Bob", Role::Participant).await;
    let mut viewer = join(&server, "talk", "watcher", Role::Viewer).await;
    assert_eq!(ann.history, (vec![], true, 1000), "an empty room's chat");
    assert!(!viewer.history.1, "viewers read only, by default");

    // Markup is carried as the text it is; pages show it as text.
    let text = "hi <b>all</b> <script>alert(1)</script> & \"quotes\"";
    chat(&mut ann, &format!("  {text}\n")).await;
    let (ann_id, bob_id) = (ann.id, bob.id);
    for c in [&mut ann, &mut bob, &mut viewer] {
        let m = next_message(&mut c.ws).await;
        assert_eq!(m.text, text, "trimmed, otherwise as sent");
        assert_eq!(
            (m.from, m.name.as_str(), m.role),
            (ann_id, "Ann", Role::Participant)
        );
        assert_eq!((m.id, m.ago_ms), (0, 0));
    }
    chat(&mut bob, "hello Ann").await;
    for c in [&mut ann, &mut bob, &mut viewer] {
        let m = next_message(&mut c.ws).await;
        assert_eq!((m.id, m.from, m.text.as_str()), (1, bob_id, "hello Ann"));
    }

    // 120 more: the room keeps the last 100.
    for i in 0..120 {
        chat(&mut ann, &format!("m{i}")).await;
    }
    for i in 0..120 {
        assert_eq!(next_message(&mut bob.ws).await.text, format!("m{i}"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = join(&server, "talk", "Cat", Role::Participant).await;
    let (messages, can_write, _) = &late.history;
    assert!(can_write);
    assert_eq!(messages.len(), 100, "the last 100 messages");
    let texts: Vec<String> = messages.iter().map(|m| m.text.clone()).collect();
    let want: Vec<String> = (20..120).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want, "oldest first");
    assert!(messages.windows(2).all(|w| w[1].id == w[0].id + 1));
    assert_eq!(messages[0].id, 22);
    assert!(
        messages.iter().all(|m| (300..10_000).contains(&m.ago_ms)),
        "each with its age: {:?}",
        messages.iter().map(|m| m.ago_ms).collect::<Vec<_>>()
    );
    let late_viewer = join(&server, "talk", "late watcher", Role::Viewer).await;
    assert_eq!(late_viewer.history.0.len(), 100, "viewers get it too");

    // A participant whose connection drops and is resumed hears the history again
    // (what was said meanwhile was not kept for it).
    let token = bob.resume.clone().expect("a resume token");
    drop(bob.ws);
    chat(&mut ann, "while Bob was away").await;
    let mut ws = connect_ws(&server).await;
    send(&mut ws, &ClientMsg::Resume { token }).await;
    match recv(&mut ws).await {
        Some(ServerMsg::Joined { id, .. }) => assert_eq!(id, bob.id),
        other => panic!("expected joined, got {other:?}"),
    }
    let (messages, ..) = next_history(&mut ws, "Bob").await;
    assert_eq!(
        messages.last().map(|m| m.text.as_str()),
        Some("while Bob was away")
    );
    assert_eq!(metric(&server, "lanrelay_chat_messages_total").await, 123.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_and_long_messages_are_refused_while_others_arrive() {
    let server = server_with(|c| {
        c.chat.rate = 5;
        c.chat.max_len = 200;
    })
    .await;
    let mut ann = join(&server, "flood", "Ann", Role::Participant).await;
    let mut bob = join(&server, "flood", "Bob", Role::Participant).await;
    assert_eq!(bob.history.2, 200, "the page learns the limit");

    for i in 0..30 {
        chat(&mut bob, &format!("spam {i}")).await;
    }
    chat(&mut ann, "still here").await;
    let (mut sent, mut refused) = (0, 0);
    let mut refusal = String::new();
    while sent + refused < 30 {
        match next_chat(&mut bob.ws).await {
            Heard::Message(m) if m.from == bob.id => sent += 1,
            Heard::Message(m) => assert_eq!(m.text, "still here"),
            Heard::Refused(code, message) => {
                assert_eq!(code, ErrorCode::RateLimited);
                refused += 1;
                refusal = message;
            }
        }
    }
    assert_eq!((sent, refused), (5, 25), "5 in 10 s, the rest refused");
    assert!(
        refusal.contains("too many chat messages: at most 5 in 10 seconds"),
        "{refusal}"
    );
    // Ann saw Bob's five and her own, and nothing of the refused ones.
    let mut from_bob = 0;
    let mut own = false;
    while !(own && from_bob == 5) {
        let m = next_message(&mut ann.ws).await;
        if m.from == bob.id {
            from_bob += 1;
        } else {
            own = m.text == "still here";
        }
    }
    quiet(&mut ann.ws).await;
    // Bob hears Ann's message while he is refused.
    chat(&mut ann, "can you read me?").await;
    assert_eq!(next_message(&mut ann.ws).await.text, "can you read me?");
    loop {
        if let Heard::Message(m) = next_chat(&mut bob.ws).await {
            if m.text == "can you read me?" {
                break;
            }
        }
    }

    // Too long (in characters, after trimming) and empty messages are refused.
    chat(&mut ann, &format!("  {}  ", "é".repeat(200))).await;
    assert_eq!(next_message(&mut ann.ws).await.text.chars().count(), 200);
    chat(&mut ann, &"é".repeat(201)).await;
    match next_chat(&mut ann.ws).await {
        Heard::Refused(ErrorCode::TooLarge, m) => assert_eq!(
            m,
            "the message is 201 characters long; at most 200 are sent"
        ),
        other => panic!("expected tooLarge, got {other:?}"),
    }
    chat(&mut ann, " \n ").await;
    assert!(matches!(
        next_chat(&mut ann.ws).await,
        Heard::Refused(ErrorCode::BadMessage, _)
    ));
    assert_eq!(
        metric(&server, "lanrelay_refused_total{limit=\"chat_rate\"}").await,
        25.0
    );
    assert_eq!(
        metric(&server, "lanrelay_refused_total{limit=\"chat_length\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_write_only_where_the_server_allows() {
    let server = server_with(|_| {}).await;
    let mut ann = join(&server, "read-only", "Ann", Role::Participant).await;
    let mut viewer = join(&server, "read-only", "watcher", Role::Viewer).await;
    chat(&mut viewer, "let me in").await;
    match next_chat(&mut viewer.ws).await {
        Heard::Refused(ErrorCode::Forbidden, m) => {
            assert!(m.contains("can read this room's chat but not write"), "{m}")
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
    quiet(&mut ann.ws).await;
    // The viewer stays, and still reads.
    chat(&mut ann, "viewers listen").await;
    assert_eq!(next_message(&mut viewer.ws).await.text, "viewers listen");
    assert_eq!(
        metric(&server, "lanrelay_refused_total{limit=\"chat_viewer\"}").await,
        1.0
    );

    let open = server_with(|c| c.chat.viewers_write = true).await;
    let mut ann = join(&open, "open", "Ann", Role::Participant).await;
    let mut viewer = join(&open, "open", "watcher", Role::Viewer).await;
    assert!(viewer.history.1, "the page may show the input");
    chat(&mut viewer, "great talk").await;
    let m = next_message(&mut ann.ws).await;
    assert_eq!((m.text.as_str(), m.role), ("great talk", Role::Viewer));
}

/// A room whose viewers are spread over both workers: viewers served by the worker
/// that is not the room's home read and write the one chat, and get its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_another_worker_share_the_chat() {
    let server = server_with(|c| {
        c.spread_viewers_after = 1;
        c.chat.viewers_write = true;
        c.chat.rate = 3;
    })
    .await;
    let mut ann = join(&server, "spread", "Ann", Role::Participant).await;
    chat(&mut ann, "before the viewers").await;
    next_message(&mut ann.ws).await;
    let mut near = join(&server, "spread", "near", Role::Viewer).await;
    let mut far = join(&server, "spread", "far", Role::Viewer).await;
    let status = server.engine.status().await.expect("engine runs");
    let participants: Vec<usize> = status.workers.iter().map(|w| w.participants).collect();
    assert_eq!(participants, vec![2, 1], "one viewer on the other worker");
    assert_eq!(far.history.0.len(), 1, "the far viewer gets the history");
    assert_eq!(far.history.0[0].text, "before the viewers");

    chat(&mut far, "hello from afar").await;
    let far_id = far.id;
    for c in [&mut ann, &mut near, &mut far] {
        let m = next_message(&mut c.ws).await;
        assert_eq!((m.text.as_str(), m.from), ("hello from afar", far_id));
    }
    chat(&mut ann, "welcome").await;
    assert_eq!(next_message(&mut far.ws).await.text, "welcome");
    // Its limit is kept by the room's home, and the refusal finds its way back.
    for _ in 0..3 {
        chat(&mut far, "again").await;
    }
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(next_chat(&mut far.ws).await);
    }
    assert!(
        matches!(
            heard.last(),
            Some(Heard::Refused(ErrorCode::RateLimited, _))
        ),
        "{heard:?}"
    );
    let late = join(&server, "spread", "late", Role::Viewer).await;
    assert_eq!(late.history.0.len(), 5, "{:?}", late.history.0);
}
