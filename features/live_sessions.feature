@live_sessions
Feature: Live sessions stay open while they show signs of life, and their ends follow the facts
  Live traffic is not replayed history. A LiveKit server sends webhooks and never a heartbeat; a
  counseling app posts an analysis every few seconds and no heartbeat; a kiosk loses its network,
  or ends a session and flushes its buffer afterwards, or replays that buffer after a restart.
  So every heartbeat, every event and every LiveKit webhook is a sign of life, and the reaper
  closes only a session whose kind has gone silent for longer than its own idle timeout (some
  kinds never), where it was last seen.

  An end the reaper chose is a guess: a later event moves it, and the client's own exit replaces
  it, once. An end the client chose is final. Late events dated up to the end still count, once
  however often they are sent, within the team's late-data window (7 days unless the team says
  otherwise). A charge follows every correction of its session with exactly one adjustment per
  change, and a rated session that is still running shows what it would cost if it ended now.

  Rule: Any sign of life keeps a session open: a heartbeat, an event, a LiveKit webhook

    @livekit
    Scenario: A participant stays 20 minutes with her camera on; LiveKit sends webhooks, never heartbeats
      Given a bootcamp whose LiveKit server sends its webhooks to sessionmeter
      And the reaper runs every 3 minutes
      When the bootcamp's LiveKit server reports what participant "mina" did in room "day-2":
        | minute | what happened              |
        | 0      | joined with her camera on  |
        | 8      | started sharing her screen |
        | 12     | stopped sharing her screen |
        | 20     | left                       |
      Then each time the reaper ran, the stay of "mina" was open, last seen at LiveKit's latest word about her
      And "mina" stayed in room "day-2" for 20 minutes, and her stay is completed
      And her stay records 20 minutes of video and 4 minutes of screen share

    @credits
    Scenario: A counseling recording that posts analyses and no heartbeat runs its whole length and is charged for it
      Given the counseling app charges 2 credits a minute for a recording, rounded up
      And counselor "dr-kim" has 100 credits
      And the reaper runs every 3 minutes
      When "dr-kim" records for 25 minutes, the app posting an analysis every 10 seconds and no heartbeat
      Then each time the reaper ran, the recording was open, last seen at its latest analysis
      When the app ends the recording
      Then the recording is completed after 25 minutes and holds all 150 analyses
      And "dr-kim" is charged 50 credits for it
      And "dr-kim" has 50 credits left

  Rule: While a rated session runs, its client sees what it would cost if it ended now

    @credits
    Scenario Outline: The counselor sees the running cost, and a warning when credits run low or run out
      Given the counseling app charges 2 credits a minute for a recording, rounded up
      And the counseling app warns when a recording would leave fewer than 20 credits
      And counselor "dr-lee" has 30 credits
      When "dr-lee" records for <minutes> minutes, the app posting an analysis every 10 seconds and no heartbeat
      Then the recording would cost <cost> credits if it ended now, leaving <left>
      And the counselor is <warned>
      And the recording is still running

      Examples:
        | minutes | cost | left | warned                            |
        | 4       | 8    | 22   | not warned                        |
        | 5       | 10   | 20   | not warned                        |
        | 6       | 12   | 18   | warned that credits are low       |
        | 15      | 30   | 0    | warned that credits are low       |
        | 16      | 32   | -2   | warned that credits are exhausted |

  Rule: Each kind of session has its own idle timeout, or none

    Background:
      Given the team's idle timeouts are:
        | kind           | idle timeout |
        | any other kind | 5 minutes    |
        | kiosk          | 10 minutes   |
        | counseling     | never        |

    @reaper
    Scenario Outline: A session that falls silent is closed after its kind's idle timeout, where it was last seen
      Given a <kind> session that gave its last sign of life 1 minute after it started
      When it stays silent for <silent> minutes and then the reaper runs
      Then the session is <outcome>

      Examples:
        | kind       | silent | outcome                                       |
        | webinar    | 4      | still active                                  |
        | webinar    | 6      | timed out where it was last seen, 1 minute in |
        | kiosk      | 9      | still active                                  |
        | kiosk      | 11     | timed out where it was last seen, 1 minute in |
        | counseling | 600    | still active                                  |

    @reaper @livekit
    Scenario Outline: A LiveKit stay goes idle only when reconciliation can tell whether it is still there
      Given a bootcamp whose LiveKit server sends its webhooks to sessionmeter
      And the bootcamp's LiveKit account <account>
      And participant "jo" joined room "day-3"
      When LiveKit says nothing about "jo" for 2 hours, and then the reaper runs
      Then the stay of "jo" is <outcome>

      Examples:
        | account                                          | outcome                                           |
        | has no server URL                                | still open                                        |
        | has the server URL https://livekit.bootcamp.test | timed out where it was last seen, when she joined |

    @reaper
    Scenario: A session still running at the team's cap is closed, however alive it is
      Given the team closes any session still running 1 hour after it started
      And a webinar session that gives a sign of life every 4 minutes for 64 minutes
      When the reaper runs
      Then the session is timed out where it was last seen, 64 minutes in

  Rule: An end the client chose is final; an end the reaper chose is a guess that the facts correct

    @kiosk @credits
    Scenario Outline: A kiosk that lost its network is reaped, then ends where its own exit says, corrected once
      Given the photo-booth kiosks charge their store 1 credit a minute, rounded up
      And store "store-12" has 100 credits
      And the reaper runs every 3 minutes
      And a guest session on kiosk "booth-7", paid by store "store-12", reports an event every 30 seconds for 5 minutes
      When the kiosk loses its network and buffers an event every 30 seconds until the guest leaves, 12 minutes in
      And the network comes back 15 minutes in
      Then the reaper closed the session where the kiosk was last seen, 5 minutes in, and charged 5 credits
      When the kiosk sends <first>, then <second>
      And it sends them all again, as it never heard back
      Then nothing the kiosk sent was refused
      And the session is completed and ends 12 minutes in, where the guest's exit says
      And the session counts 24 events, each once, with no gaps
      And store "store-12" was charged 12 credits for the session: its first charge and exactly one adjustment
      And store "store-12" has 88 credits left

      Examples:
        | first               | second              |
        | its buffered events | the guest's exit    |
        | the guest's exit    | its buffered events |

    @kiosk
    Scenario Outline: An event that arrives after the end is taken or refused by who ended the session
      Given a kiosk session that <who ended it> 10 minutes in
      When an event dated <dated> arrives 10 minutes after the end
      Then the event is <outcome>
      And the session is <status> and ends <end> minutes in

      Examples:
        | who ended it      | dated                    | outcome                               | status    | end |
        | the guest ended   | 2 minutes before the end | stored                                | completed | 10  |
        | the guest ended   | at the end               | stored                                | completed | 10  |
        | the guest ended   | 1 minute after the end   | refused because the session has ended | completed | 10  |
        | the reaper closed | 2 minutes before the end | stored                                | timed out | 10  |
        | the reaper closed | 1 minute after the end   | stored                                | timed out | 11  |

    @kiosk
    Scenario Outline: The client's own exit replaces the reaper's end, once
      Given a kiosk session that the reaper closed 10 minutes in
      When the kiosk's exit arrives 10 minutes after the end, saying <exit>
      And another exit arrives a minute later, saying "completed" 15 minutes in
      Then the second exit is a replay of the first
      And the session is <status> and ends <end> minutes in

      Examples:
        | exit                      | status    | end |
        | "completed" 12 minutes in | completed | 12  |
        | "abandoned" with no time  | abandoned | 10  |

  Rule: Late events count once, within the late-data window

    @kiosk @credits @late_data
    Scenario: A kiosk ends its session, flushes its buffer, replays it after a restart, and every photo counts once
      Given the photo-booth kiosks charge their store 1 credit per photo printed
      And store "store-12" has 100 credits
      And a guest session on kiosk "booth-3", paid by store "store-12", reports events 1 to 3 as they happen, each printing a photo
      And the guest leaves 4 minutes in
      When the kiosk flushes its buffer: events 4 to 8, each printing a photo, all dated before the guest left
      And the kiosk restarts and replays its whole buffer: events 1 to 8
      Then the replay was recognised as 8 duplicates
      And the session counts 8 events, each once, with no gaps
      And the session printed 8 photos
      And store "store-12" was charged 8 credits for the session: its first charge and exactly one adjustment
      And store "store-12" has 92 credits left

    @kiosk @late_data
    Scenario Outline: An event that arrives long after the end is refused as late once the window has passed
      Given the team takes late data for <window>
      And a kiosk session that the guest ended 10 minutes in
      When an event dated 2 minutes before the end arrives <delay> after the end
      Then the event is <outcome>

      Examples:
        | window               | delay    | outcome         |
        | 7 days (the default) | 6 days   | stored          |
        | 7 days (the default) | 8 days   | refused as late |
        | 1 day                | 12 hours | stored          |
        | 1 day                | 2 days   | refused as late |
